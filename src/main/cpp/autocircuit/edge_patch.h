// Internal: what edge_patch.cpp (autograd, CPU driver) shares with edge_patch_cuda.cpp (CUDA glue).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace autocircuit::kernels::detail {

// The sizes of one edge_patch call. Row r of the packed mask W belongs to mask m and head h with
// rowOffset[m] <= r < rowOffset[m] + heads[m].
struct Plan {
  int64_t batch = 0, seq = 0, dModel = 0, nIn = 0, rows = 0;
  bool maskBatch = false, maskSeq = false, maskHead = false;
  std::vector<int64_t> heads;      // per mask: H_m, 1 when the layout has no head dimension
  std::vector<int64_t> rowOffset;  // per mask
  int64_t tokens() const { return batch * seq; }
  int64_t groups() const { return (maskBatch ? batch : 1) * (maskSeq ? seq : 1); }
};

#if defined(AUTOCIRCUIT_WITH_CUDA)
// w: [G, R, nIn] fp32 on the device; outs: one per mask.
void edge_patch_forward_cuda(const Plan& plan, const at::Tensor& input, const at::Tensor& w,
                             const at::Tensor& patch, const at::Tensor& curr, std::vector<at::Tensor>& outs);
// grads: one per mask (undefined = zero); results undefined when not requested; patch and curr are read only
// for gradW.
void edge_patch_backward_cuda(const Plan& plan, const at::Tensor& w, const at::Tensor& patch,
                              const at::Tensor& curr, const std::vector<at::Tensor>& grads, at::Tensor& gradInput,
                              at::Tensor& gradW, at::Tensor& gradCurr);
// A checksum of the bits of patch and curr (with ATen reductions on the device), compared between the passes.
int64_t edge_patch_checksum_cuda(const at::Tensor& patch, const at::Tensor& curr);
#endif

}  // namespace autocircuit::kernels::detail
