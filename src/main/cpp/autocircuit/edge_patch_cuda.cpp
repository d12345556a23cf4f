// ATen glue for the CUDA kernels of edge_patch (src/main/cuda/autocircuit/edge_patch.cu). Compiled and
// linked only when build-native.sh finds nvcc and the libtorch CUDA libraries (AUTOCIRCUIT_WITH_CUDA).
#if defined(AUTOCIRCUIT_WITH_CUDA)

#include <algorithm>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "autocircuit/edge_patch.h"
#include "autocircuit/edge_patch_cuda.h"

namespace autocircuit::kernels::detail {
namespace {

cuda::DType cudaDType(at::ScalarType t) { return t == at::kBFloat16 ? cuda::DType::BF16 : cuda::DType::F32; }

cuda::Shape cudaShape(const Plan& plan) {
  cuda::Shape s;
  s.batch = plan.batch;
  s.seq = plan.seq;
  s.dModel = plan.dModel;
  s.nIn = plan.nIn;
  s.rows = plan.rows;
  s.maskBatch = plan.maskBatch;
  s.maskSeq = plan.maskSeq;
  return s;
}

// Masks [first, first + count) as one launch's MaskRows over the given per-mask tensors.
cuda::MaskRows maskRows(const Plan& plan, const std::vector<at::Tensor>& perMask, size_t first, size_t count) {
  cuda::MaskRows rows;
  rows.count = int(count);
  for (size_t k = 0; k < count; ++k) {
    rows.heads[k] = plan.heads[first + k];
    rows.rowOffset[k] = plan.rowOffset[first + k];
    rows.base[k] = perMask[first + k].defined() ? perMask[first + k].data_ptr() : nullptr;
  }
  return rows;
}

}  // namespace

void edge_patch_forward_cuda(const Plan& plan, const at::Tensor& input, const at::Tensor& w, const at::Tensor& patch,
                             const at::Tensor& curr, std::vector<at::Tensor>& outs) {
  const c10::cuda::CUDAGuard guard(input.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(input.device().index()).stream();
  const cuda::Shape shape = cudaShape(plan);
  for (size_t first = 0; first < outs.size(); first += cuda::kMaxMasks) {
    const size_t count = std::min<size_t>(cuda::kMaxMasks, outs.size() - first);
    cuda::edge_patch_forward(cudaDType(input.scalar_type()), shape, input.data_ptr(), patch.data_ptr(),
                             curr.data_ptr(), w.data_ptr<float>(), maskRows(plan, outs, first, count), nullptr,
                             stream);
  }
}

void edge_patch_backward_cuda(const Plan& plan, const at::Tensor& w, const at::Tensor& patch, const at::Tensor& curr,
                              const std::vector<at::Tensor>& grads, at::Tensor& gradInput, at::Tensor& gradW,
                              at::Tensor& gradCurr) {
  const c10::cuda::CUDAGuard guard(w.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(w.device().index()).stream();
  const cuda::Shape shape = cudaShape(plan);
  at::ScalarType dtype = at::kFloat;
  for (const at::Tensor& g : grads) {
    if (g.defined()) dtype = g.scalar_type();
  }
  if (gradInput.defined() || gradCurr.defined()) {
    for (size_t first = 0; first < grads.size(); first += cuda::kMaxMasks) {
      const size_t count = std::min<size_t>(cuda::kMaxMasks, grads.size() - first);
      cuda::edge_patch_backward(cudaDType(dtype), shape, w.data_ptr<float>(), maskRows(plan, grads, first, count),
                                gradInput.defined() ? gradInput.data_ptr() : nullptr,
                                gradCurr.defined() ? gradCurr.data_ptr() : nullptr, first > 0, stream);
    }
  }
  if (gradW.defined()) {
    // grad_W[g, r, i] = sum over the tokens of group g and d of G[b, s, r, d] * delta[i, b, s, d]: a batched
    // GEMM with a long reduction, which cuBLAS (through einsum) does well. delta is recomputed (one temporary).
    const at::Tensor delta = patch - curr;
    std::vector<at::Tensor> rows;
    for (size_t m = 0; m < grads.size(); ++m) {
      at::Tensor g = grads[m].defined()
                         ? grads[m]
                         : at::zeros({plan.batch, plan.seq, plan.heads[m], plan.dModel}, delta.options());
      if (g.dim() == 3) g = g.unsqueeze(2);  // [B, S, 1, D]
      rows.push_back(g);
    }
    const at::Tensor all = at::cat(rows, 2);  // [B, S, R, D]
    const std::string out = std::string(plan.maskBatch ? "b" : "") + (plan.maskSeq ? "s" : "") + "ri";
    const at::Tensor gw = at::einsum("bsrd,ibsd->" + out, {all, delta}).to(at::kFloat);
    gradW.copy_(gw.reshape(gradW.sizes()));
  }
}

int64_t edge_patch_checksum_cuda(const at::Tensor& patch, const at::Tensor& curr) {
  int64_t sum = 0;
  for (const at::Tensor* t : {&patch, &curr}) {
    const at::Tensor bits = t->view(t->element_size() == 4 ? at::kInt : at::kShort).to(at::kLong);
    sum = sum * 31 + bits.sum().item<int64_t>() + 7 * bits.mul(0x9E3779B1LL).sum().item<int64_t>();
  }
  return sum;
}

}  // namespace autocircuit::kernels::detail

#endif  // AUTOCIRCUIT_WITH_CUDA
