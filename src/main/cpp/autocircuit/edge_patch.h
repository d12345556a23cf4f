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
// A zeroed device int32[2] receiving the checksum of patch and curr (edge_patch_cuda.h), on the device of like.
at::Tensor new_checksum_cuda(const at::Tensor& like);
// w: [G, R, nIn] fp32 on the device; outs: one per mask. checksum: undefined, or new_checksum_cuda's tensor
// (fused into the dense kernel's read of patch and curr). trySparse: binary masks may take the sparse form
// (never with a checksum); deltaSum/deltaRows: the pass's running sum (undefined: none). Returns whether the
// sparse form ran.
bool edge_patch_forward_cuda(const Plan& plan, const at::Tensor& input, const at::Tensor& w,
                             const at::Tensor& patch, const at::Tensor& curr, std::vector<at::Tensor>& outs,
                             const at::Tensor& checksum, bool trySparse, const at::Tensor& deltaSum,
                             const at::Tensor& deltaRows);
// grads: one per mask (undefined = zero); results undefined when not requested; gradW zeroed by the caller;
// patch and curr are read only for gradW, and then checksummed into checksum.
void edge_patch_backward_cuda(const Plan& plan, const at::Tensor& w, const at::Tensor& patch,
                              const at::Tensor& curr, const std::vector<at::Tensor>& grads, at::Tensor& gradInput,
                              at::Tensor& gradW, at::Tensor& gradCurr, const at::Tensor& checksum);
#endif

}  // namespace autocircuit::kernels::detail
