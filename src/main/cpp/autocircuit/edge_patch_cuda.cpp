// ATen glue for the CUDA kernels of edge_patch (src/main/cuda/autocircuit/edge_patch.cu). Compiled and
// linked only when build-native.sh finds nvcc and the libtorch CUDA libraries (AUTOCIRCUIT_WITH_CUDA).
#if defined(AUTOCIRCUIT_WITH_CUDA)

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "autocircuit/edge_patch.h"
#include "autocircuit/edge_patch_cuda.h"
#include "autocircuit/sparse_plan.h"

namespace autocircuit::kernels::detail {
namespace {

cuda::DType cudaDType(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return cuda::DType::F32;
    case at::kBFloat16: return cuda::DType::BF16;
    case at::kHalf: return cuda::DType::F16;
    default: TORCH_CHECK(false, "edge_patch (CUDA): dtype ", t, " is not supported (float32, bfloat16, float16)");
  }
}

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

uint32_t* checksumPointer(const at::Tensor& checksum) {
  return checksum.defined() ? reinterpret_cast<uint32_t*>(checksum.data_ptr<int32_t>()) : nullptr;
}

// The sparse form on the device: one upload of [rowStart int64 | minority int32 | majority u8 | sumAll u8].
struct DeviceSparse {
  at::Tensor bytes;
  cuda::SparseRows rows;
};

DeviceSparse uploadSparse(const cuda::SparsePlanHost& sp, const at::Device& device) {
  const size_t nRowStart = sp.rowStart.size() * sizeof(int64_t);
  const size_t nMinority = sp.minority.size() * sizeof(int32_t);
  const size_t offMinority = nRowStart;
  const size_t offMajority = offMinority + nMinority;
  const size_t offSumAll = offMajority + sp.majority.size();
  const size_t total = offSumAll + sp.sumAll.size();
  at::Tensor host = at::empty({int64_t(std::max<size_t>(total, 1))}, at::TensorOptions().dtype(at::kByte));
  uint8_t* h = host.data_ptr<uint8_t>();
  std::memcpy(h, sp.rowStart.data(), nRowStart);
  if (nMinority != 0) std::memcpy(h + offMinority, sp.minority.data(), nMinority);
  std::memcpy(h + offMajority, sp.majority.data(), sp.majority.size());
  std::memcpy(h + offSumAll, sp.sumAll.data(), sp.sumAll.size());
  DeviceSparse out;
  out.bytes = host.to(device);
  const uint8_t* d = out.bytes.data_ptr<uint8_t>();
  out.rows.rowStart = reinterpret_cast<const int64_t*>(d);
  out.rows.minority = reinterpret_cast<const int32_t*>(d + offMinority);
  out.rows.majority = d + offMajority;
  out.rows.sumAll = d + offSumAll;
  return out;
}

}  // namespace

at::Tensor new_checksum_cuda(const at::Tensor& like) {
  return at::zeros({2}, like.options().dtype(at::kInt));
}

bool edge_patch_forward_cuda(const Plan& plan, const at::Tensor& input, const at::Tensor& w, const at::Tensor& patch,
                             const at::Tensor& curr, std::vector<at::Tensor>& outs, const at::Tensor& checksum,
                             bool trySparse, const at::Tensor& deltaSum, const at::Tensor& deltaRows) {
  const c10::cuda::CUDAGuard guard(input.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(input.device().index()).stream();
  const cuda::Shape shape = cudaShape(plan);
  const cuda::DType dtype = cudaDType(input.scalar_type());

  if (trySparse && !checksum.defined()) {
    // Planning reads the masks on the host: one small device-to-host copy of w (G x R x nIn floats).
    const at::Tensor wHost = w.to(at::kCPU).contiguous();
    cuda::SparsePlanHost sp;
    const bool running = deltaSum.defined() && deltaRows.data_ptr<int64_t>()[0] <= plan.nIn;
    const int64_t runningRows = running ? deltaRows.data_ptr<int64_t>()[0] : -1;
    if (cuda::planBinaryMasks(wHost.data_ptr<float>(), plan.groups(), plan.rows, plan.nIn, sp) &&
        cuda::sparsePaysOnGpu(sp, runningRows)) {
      const DeviceSparse device = uploadSparse(sp, input.device());
      const float* total = nullptr;
      if (running && sp.anySumAll()) {
        int64_t* rows = deltaRows.data_ptr<int64_t>();
        cuda::edge_patch_running_sum(dtype, shape, patch.data_ptr(), curr.data_ptr(), *rows, plan.nIn,
                                     deltaSum.data_ptr<float>(), stream);
        *rows = plan.nIn;
        total = deltaSum.data_ptr<float>();
      }
      for (size_t first = 0; first < outs.size(); first += cuda::kMaxMasks) {
        const size_t count = std::min<size_t>(cuda::kMaxMasks, outs.size() - first);
        cuda::edge_patch_forward_sparse(dtype, shape, input.data_ptr(), patch.data_ptr(), curr.data_ptr(),
                                        device.rows, total, maskRows(plan, outs, first, count), stream);
      }
      return true;
    }
  }
  for (size_t first = 0; first < outs.size(); first += cuda::kMaxMasks) {
    const size_t count = std::min<size_t>(cuda::kMaxMasks, outs.size() - first);
    // patch and curr are checksummed by the first launch only
    cuda::edge_patch_forward(dtype, shape, input.data_ptr(), patch.data_ptr(), curr.data_ptr(), w.data_ptr<float>(),
                             maskRows(plan, outs, first, count), first == 0 ? checksumPointer(checksum) : nullptr,
                             stream);
  }
  return false;
}

void edge_patch_backward_cuda(const Plan& plan, const at::Tensor& w, const at::Tensor& patch, const at::Tensor& curr,
                              const std::vector<at::Tensor>& grads, at::Tensor& gradInput, at::Tensor& gradW,
                              at::Tensor& gradCurr, const at::Tensor& checksum) {
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
    // gradW is zeroed by the caller; patch - curr is recomputed inside the kernel, never stored.
    for (size_t first = 0; first < grads.size(); first += cuda::kMaxMasks) {
      const size_t count = std::min<size_t>(cuda::kMaxMasks, grads.size() - first);
      cuda::edge_patch_mask_grad(cudaDType(patch.scalar_type()), shape, patch.data_ptr(), curr.data_ptr(),
                                 maskRows(plan, grads, first, count), gradW.data_ptr<float>(),
                                 first == 0 ? checksumPointer(checksum) : nullptr, stream);
    }
  }
}

}  // namespace autocircuit::kernels::detail

#endif  // AUTOCIRCUIT_WITH_CUDA
