// The CUDA kernels of edge_patch behind raw pointers, sizes and a stream (no ATen): the ATen glue in
// src/main/cpp/autocircuit/edge_patch_cuda.cpp calls them, and so does the standalone check
// (edge_patch_check.cu), which a GPU machine without Maven or libtorch can build and run.
//
// Layouts (all contiguous, row-major):
//   input [T, D], patch/curr/delta [nIn, T, D] with T = batch * seq tokens, token t = b * seq + s;
//   w [G, R, nIn] fp32 with G = (maskBatch ? batch : 1) * (maskSeq ? seq : 1); row r belongs to output
//   mask m with rowOffset[m] <= r < rowOffset[m] + heads[m]; output m is [T, heads[m], D].
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace autocircuit::kernels::cuda {

enum class DType : int32_t { F32 = 0, BF16 = 1 };

constexpr int kMaxMasks = 8;  // masks per launch; the glue splits longer lists

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

// out_m[t, h, :] = input[t, :] + sum_i w[g(t), rowOffset[m] + h, i] * (patch[i, t, :] - curr[i, t, :]);
// when delta != nullptr it also receives patch - curr. Throws std::runtime_error on a CUDA error.
void edge_patch_forward(DType dtype, const Shape& shape, const void* input, const void* patch, const void* curr,
                        const float* w, const MaskRows& outs, void* delta, cudaStream_t stream);

// grad_input[t, :] = sum_m sum_h gradOut_m[t, h, :] (when gradInput != nullptr; accumulate: add to it instead
// of overwriting) and grad_curr[i, t, :] = -sum_m sum_h w[g(t), r, i] * gradOut_m[t, h, :] (same).
// The mask gradient is a plain GEMM over (token, d) and is left to the caller (cuBLAS through ATen).
void edge_patch_backward(DType dtype, const Shape& shape, const float* w, const MaskRows& gradOut,
                         void* gradInput, void* gradCurr, bool accumulate, cudaStream_t stream);

}  // namespace autocircuit::kernels::cuda
