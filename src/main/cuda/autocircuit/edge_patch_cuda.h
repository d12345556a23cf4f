// The CUDA kernels of edge_patch behind raw pointers, sizes and a stream (no ATen): the ATen glue in
// src/main/cpp/autocircuit/edge_patch_cuda.cpp calls them, and so does the standalone checker
// (src/main/cuda/checker), which a GPU machine without Maven or libtorch can build and run.
//
// Layouts (all contiguous, row-major):
//   input [T, D], patch/curr [nIn, T, D] with T = batch * seq tokens, token t = b * seq + s;
//   w [G, R, nIn] fp32 with G = (maskBatch ? batch : 1) * (maskSeq ? seq : 1); row r belongs to output
//   mask m with rowOffset[m] <= r < rowOffset[m] + heads[m]; output m is [T, heads[m], D].
// Activations (input, patch, curr, outputs, gradients of them) are fp32, bf16 or fp16; every sum is formed in
// fp32 and rounded once. All the masks of one call (Q, K and V of a block: up to kMaxMasks) go in one launch.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace autocircuit::kernels::cuda {

enum class DType : int32_t { F32 = 0, BF16 = 1, F16 = 2 };

constexpr int kMaxMasks = 8;          // masks per launch; the glue splits longer lists
constexpr int kMaxRowsPerPass = 64;   // output rows whose sums one thread keeps in registers; more rows: passes

struct MaskRows {
  int count = 0;                     // masks in this launch
  int64_t heads[kMaxMasks] = {};     // H_m (1 without a head dimension)
  int64_t rowOffset[kMaxMasks] = {}; // first row of mask m in w
  void* base[kMaxMasks] = {};        // output (forward) or incoming gradient (backward, nullptr = zero)
};

struct Shape {
  int64_t batch = 0, seq = 0, dModel = 0, nIn = 0;
  int64_t rows = 0;  // R: rows of w (all masks of the call, not only this launch's)
  bool maskBatch = false, maskSeq = false;
};

// Binary masks in sparse form, in device memory (the meaning of the CPU path's SparseMasks, cpu_kernels.h):
// row r of group g has majority value majority[g * R + r] and the sources whose mask differs from it are
// minority[rowStart[g * R + r] .. rowStart[g * R + r + 1]); then
//   out[r] = input + (maj ? sum_i delta[i] : 0) + (maj ? -1 : +1) * sum_{i in minority} delta[i].
// sumAll[g]: some row of group g has majority 1, so sum_i delta[i] is needed (from deltaSum when given, else
// formed by reading every source).
struct SparseRows {
  const uint8_t* majority = nullptr;  // [G * R]
  const int64_t* rowStart = nullptr;  // [G * R + 1]
  const int32_t* minority = nullptr;  // source indices
  const uint8_t* sumAll = nullptr;    // [G]
};

// The checksum of patch and curr that guards the mask gradients against in-place changes between the passes:
// over every element x of both, h[0] += bits(x) and h[1] += bits(x) * kChecksumMultiplier modulo 2^32 (bits:
// the fp32 pattern; a 16-bit value's bits shifted left by 16) -- the CPU path's definition, so both agree.
// It is accumulated (atomicAdd) into a device uint32[2] that the caller zeroes; sums commute, so the launch
// configuration does not change it. No copy of patch or curr is made.
constexpr uint32_t kChecksumMultiplier = 0x9E3779B1u;

// out_m[t, h, :] = input[t, :] + sum_i w[g(t), rowOffset[m] + h, i] * (patch[i, t, :] - curr[i, t, :]).
// checksum: nullptr, or the device uint32[2] that receives the checksum of patch and curr (fused into the read).
// Throws std::runtime_error on a CUDA error or bad arguments.
void edge_patch_forward(DType dtype, const Shape& shape, const void* input, const void* patch, const void* curr,
                        const float* w, const MaskRows& outs, uint32_t* checksum, cudaStream_t stream);

// The same outputs for binary masks in sparse form. deltaSum: nullptr, or [T, D] fp32 holding
// sum_{i < nIn} (patch[i] - curr[i]) (the running sum, brought up to date by edge_patch_running_sum), used for
// the groups with sumAll set instead of reading every source.
void edge_patch_forward_sparse(DType dtype, const Shape& shape, const void* input, const void* patch,
                               const void* curr, const SparseRows& sparse, const float* deltaSum,
                               const MaskRows& outs, cudaStream_t stream);

// deltaSum[t, :] += sum_{from <= i < to} (patch[i, t, :] - curr[i, t, :]) (fp32), for the running sum of a pass.
void edge_patch_running_sum(DType dtype, const Shape& shape, const void* patch, const void* curr, int64_t from,
                            int64_t to, float* deltaSum, cudaStream_t stream);

// grad_input[t, :] = sum_m sum_h gradOut_m[t, h, :] (when gradInput != nullptr) and
// grad_curr[i, t, :] = -sum_m sum_h w[g(t), r, i] * gradOut_m[t, h, :] (when gradCurr != nullptr); accumulate:
// add to them instead of overwriting (the glue's second and later launches of a call with > kMaxMasks masks).
void edge_patch_backward(DType dtype, const Shape& shape, const float* w, const MaskRows& gradOut,
                         void* gradInput, void* gradCurr, bool accumulate, cudaStream_t stream);

// The mask gradient: gradW[g, r, i] += sum over the tokens t of group g and d of
// gradOut_r[t, d] * (patch[i, t, d] - curr[i, t, d]) (patch - curr recomputed, never stored). gradW [G, R, nIn]
// fp32, zeroed by the caller. checksum: as in edge_patch_forward (every element of patch and curr is read once).
void edge_patch_mask_grad(DType dtype, const Shape& shape, const void* patch, const void* curr,
                          const MaskRows& gradOut, float* gradW, uint32_t* checksum, cudaStream_t stream);

}  // namespace autocircuit::kernels::cuda
