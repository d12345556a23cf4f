// edge_patch on CUDA: the fused masked-difference step of edge patching, forward and the
// input/curr part of backward. No ATen here (see edge_patch_cuda.h); the glue is
// src/main/cpp/autocircuit/edge_patch_cuda.cpp and the standalone check is edge_patch_check.cu.
//
// The step is bandwidth bound (about 14 FLOP/byte in fp32), so the design goal is one read of
// patch and curr and one write of each output: a thread owns one (token, d) column, loops over the nIn
// sources with coalesced loads, and keeps the partial sums of up to RC output rows in registers; the mask
// rows of the token's group are staged in shared memory (all threads of a block read the same word: a
// broadcast). When R > 64 the rows are done in passes, and later passes re-read patch and curr (from L2
// for the sizes of K1).
//
// Not yet tuned on a GPU (no GPU was available when this was written): block size 128 and the 64-row cap
// are first guesses; edge_patch_check.cu reports GB/s against the device peak to tune them.
#include "autocircuit/edge_patch_cuda.h"

#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include <cuda_bf16.h>

#include "autocircuit/cuda_check.h"

namespace autocircuit::kernels::cuda {
namespace {

// ---- helpers ----

constexpr int kBlock = 128;      // threads per block, one (token, d) column each
constexpr int kSourceChunk = 64; // sources whose mask rows are staged in shared memory at a time
constexpr int kMaxRowsPerPass = 64;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

__device__ __forceinline__ float toFloat(float x) { return x; }
__device__ __forceinline__ float toFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T fromFloat(float x);
template <> __device__ __forceinline__ float fromFloat<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

__device__ __forceinline__ int64_t groupOf(const Shape& s, int64_t t) {
  const int64_t b = t / s.seq, q = t % s.seq;
  return (s.maskBatch ? b * (s.maskSeq ? s.seq : 1) : 0) + (s.maskSeq ? q : 0);
}

// Output (or gradient) address of absolute row r for token t and column d, or nullptr.
template <typename T>
__device__ __forceinline__ T* rowAddress(const MaskRows& rows, int64_t r, int64_t t, int64_t d, int64_t dModel) {
  for (int m = 0; m < rows.count; ++m) {
    const int64_t h = r - rows.rowOffset[m];
    if (h >= 0 && h < rows.heads[m]) {
      if (rows.base[m] == nullptr) return nullptr;
      return static_cast<T*>(rows.base[m]) + (t * rows.heads[m] + h) * dModel + d;
    }
  }
  return nullptr;
}

// Stages w[g, r0 .. r0 + rc, i0 .. i0 + ic) transposed into ws[i][RC] (zero beyond rc).
template <int RC>
__device__ __forceinline__ void stageRows(float* ws, const float* w, const Shape& s, int64_t g, int64_t r0, int rc,
                                          int64_t i0, int ic) {
  for (int e = threadIdx.x; e < ic * RC; e += blockDim.x) {
    const int i = e / RC, r = e % RC;
    ws[e] = r < rc ? w[(g * s.rows + r0 + r) * s.nIn + i0 + i] : 0.f;
  }
}

// ---- kernels ----

// One pass over rows [r0, r0 + rc) of the launch, rc <= RC. grid: (ceil(D / kBlock), min(T, 65535)).
template <typename T, int RC>
__global__ void edge_patch_forward_kernel(Shape s, const T* __restrict__ input, const T* __restrict__ patch,
                                          const T* __restrict__ curr, const float* __restrict__ w, MaskRows outs,
                                          T* __restrict__ delta, int64_t r0, int rc) {
  __shared__ float ws[kSourceChunk * RC];
  const int64_t tokens = s.batch * s.seq;
  const int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool live = d < s.dModel;
  for (int64_t t = blockIdx.y; t < tokens; t += gridDim.y) {
    const int64_t g = groupOf(s, t);
    float acc[RC];
#pragma unroll
    for (int r = 0; r < RC; ++r) acc[r] = 0.f;
    for (int64_t i0 = 0; i0 < s.nIn; i0 += kSourceChunk) {
      const int ic = int(s.nIn - i0 < kSourceChunk ? s.nIn - i0 : kSourceChunk);
      __syncthreads();
      stageRows<RC>(ws, w, s, g, r0, rc, i0, ic);
      __syncthreads();
      if (live) {
        for (int i = 0; i < ic; ++i) {
          const int64_t at = ((i0 + i) * tokens + t) * s.dModel + d;
          const float diff = toFloat(patch[at]) - toFloat(curr[at]);
          if (delta != nullptr) delta[at] = fromFloat<T>(diff);
#pragma unroll
          for (int r = 0; r < RC; ++r) acc[r] += ws[i * RC + r] * diff;
        }
      }
    }
    if (live) {
      const float x = toFloat(input[t * s.dModel + d]);
#pragma unroll
      for (int r = 0; r < RC; ++r) {
        if (r < rc) {
          T* o = rowAddress<T>(outs, r0 + r, t, d, s.dModel);
          if (o != nullptr) *o = fromFloat<T>(x + acc[r]);
        }
      }
    }
  }
}

// One pass over rows [r0, r0 + rc): grad_input += sum_r g_r, grad_curr[i] -= sum_r w[r][i] g_r (first pass of a
// non-accumulating call: = instead of +=).
template <typename T, int RC>
__global__ void edge_patch_backward_kernel(Shape s, const float* __restrict__ w, MaskRows grads,
                                           T* __restrict__ gradInput, T* __restrict__ gradCurr, int64_t r0, int rc,
                                           bool overwrite) {
  __shared__ float ws[kSourceChunk * RC];
  const int64_t tokens = s.batch * s.seq;
  const int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool live = d < s.dModel;
  for (int64_t t = blockIdx.y; t < tokens; t += gridDim.y) {
    const int64_t g = groupOf(s, t);
    float gr[RC];
    float sum = 0.f;
#pragma unroll
    for (int r = 0; r < RC; ++r) {
      gr[r] = 0.f;
      if (live && r < rc) {
        const T* p = rowAddress<T>(grads, r0 + r, t, d, s.dModel);
        if (p != nullptr) gr[r] = toFloat(*p);
      }
      sum += gr[r];
    }
    if (live && gradInput != nullptr) {
      T* o = gradInput + t * s.dModel + d;
      *o = fromFloat<T>(overwrite ? sum : toFloat(*o) + sum);
    }
    if (gradCurr == nullptr) continue;
    for (int64_t i0 = 0; i0 < s.nIn; i0 += kSourceChunk) {
      const int ic = int(s.nIn - i0 < kSourceChunk ? s.nIn - i0 : kSourceChunk);
      __syncthreads();
      stageRows<RC>(ws, w, s, g, r0, rc, i0, ic);
      __syncthreads();
      if (live) {
        for (int i = 0; i < ic; ++i) {
          float v = 0.f;
#pragma unroll
          for (int r = 0; r < RC; ++r) v += ws[i * RC + r] * gr[r];
          T* o = gradCurr + ((i0 + i) * tokens + t) * s.dModel + d;
          *o = fromFloat<T>(overwrite ? -v : toFloat(*o) - v);
        }
      }
    }
  }
}

// ---- launcher ----

// Rows of one launch: [first, end) in absolute row numbers.
void launchRange(const MaskRows& rows, int64_t& first, int64_t& end) {
  first = rows.rowOffset[0];
  end = rows.rowOffset[rows.count - 1] + rows.heads[rows.count - 1];
}

// Calls fn(std::integral_constant<int, RC>) with the smallest RC in {8, 16, 32, 64} that holds rc rows.
template <typename Fn>
void dispatchRows(int rc, Fn&& fn) {
  if (rc <= 8) fn(std::integral_constant<int, 8>{});
  else if (rc <= 16) fn(std::integral_constant<int, 16>{});
  else if (rc <= 32) fn(std::integral_constant<int, 32>{});
  else fn(std::integral_constant<int, 64>{});
}

template <typename T>
void forwardTyped(const Shape& s, const void* input, const void* patch, const void* curr, const float* w,
                  const MaskRows& outs, void* delta, cudaStream_t stream) {
  const int64_t tokens = s.batch * s.seq;
  if (tokens == 0 || s.dModel == 0) return;
  int64_t first, end;
  launchRange(outs, first, end);
  const int64_t rows = end - first;
  const int64_t passes = std::max<int64_t>(1, ceil_div(rows, kMaxRowsPerPass));
  const int perPass = int(ceil_div(rows, passes));
  const dim3 grid(unsigned(ceil_div(s.dModel, kBlock)), unsigned(std::min<int64_t>(tokens, 65535)));
  for (int64_t p = 0; p < passes; ++p) {
    const int64_t r0 = first + p * perPass;
    const int rc = int(std::min<int64_t>(perPass, end - r0));
    T* d = p == 0 ? static_cast<T*>(delta) : nullptr;  // patch - curr is written once
    dispatchRows(perPass, [&](auto cap) {
      constexpr int RC = decltype(cap)::value;
      edge_patch_forward_kernel<T, RC><<<grid, kBlock, 0, stream>>>(
          s, static_cast<const T*>(input), static_cast<const T*>(patch), static_cast<const T*>(curr), w, outs, d, r0,
          rc);
    });
    AC_CUDA_CHECK(cudaGetLastError());
  }
}

template <typename T>
void backwardTyped(const Shape& s, const float* w, const MaskRows& grads, void* gradInput, void* gradCurr,
                   bool accumulate, cudaStream_t stream) {
  const int64_t tokens = s.batch * s.seq;
  if (tokens == 0 || s.dModel == 0) return;
  int64_t first, end;
  launchRange(grads, first, end);
  const int64_t rows = end - first;
  const int64_t passes = std::max<int64_t>(1, ceil_div(rows, kMaxRowsPerPass));
  const int perPass = int(ceil_div(rows, passes));
  const dim3 grid(unsigned(ceil_div(s.dModel, kBlock)), unsigned(std::min<int64_t>(tokens, 65535)));
  for (int64_t p = 0; p < passes; ++p) {
    const int64_t r0 = first + p * perPass;
    const int rc = int(std::min<int64_t>(perPass, end - r0));
    const bool overwrite = !accumulate && p == 0;
    dispatchRows(perPass, [&](auto cap) {
      constexpr int RC = decltype(cap)::value;
      edge_patch_backward_kernel<T, RC><<<grid, kBlock, 0, stream>>>(
          s, w, grads, static_cast<T*>(gradInput), static_cast<T*>(gradCurr), r0, rc, overwrite);
    });
    AC_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace

void edge_patch_forward(DType dtype, const Shape& shape, const void* input, const void* patch, const void* curr,
                        const float* w, const MaskRows& outs, void* delta, cudaStream_t stream) {
  if (outs.count <= 0 || outs.count > kMaxMasks) throw std::runtime_error("edge_patch_forward: 1 to 8 masks per launch");
  if (dtype == DType::BF16) {
    forwardTyped<__nv_bfloat16>(shape, input, patch, curr, w, outs, delta, stream);
  } else {
    forwardTyped<float>(shape, input, patch, curr, w, outs, delta, stream);
  }
}

void edge_patch_backward(DType dtype, const Shape& shape, const float* w, const MaskRows& gradOut, void* gradInput,
                         void* gradCurr, bool accumulate, cudaStream_t stream) {
  if (gradOut.count <= 0 || gradOut.count > kMaxMasks) {
    throw std::runtime_error("edge_patch_backward: 1 to 8 masks per launch");
  }
  if (dtype == DType::BF16) {
    backwardTyped<__nv_bfloat16>(shape, w, gradOut, gradInput, gradCurr, accumulate, stream);
  } else {
    backwardTyped<float>(shape, w, gradOut, gradInput, gradCurr, accumulate, stream);
  }
}

}  // namespace autocircuit::kernels::cuda
