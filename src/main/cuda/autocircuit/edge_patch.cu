// edge_patch on CUDA: the fused masked-difference step of edge patching, forward (dense and sparse binary-mask
// forms), the running sum of source differences, and backward (input, curr and mask gradients). No ATen here
// (see edge_patch_cuda.h); the glue is src/main/cpp/autocircuit/edge_patch_cuda.cpp and the standalone
// checker is src/main/cuda/checker.
//
// The step is bandwidth bound (about 14 FLOP per byte in fp32), so the design goal is one read of patch and curr
// and one write of each output: a thread owns one (token, d) column, loops over the nIn sources with coalesced
// loads, and keeps the partial sums of up to RC output rows in registers; the mask rows of the token's group are
// staged in shared memory (all threads of a block read the same word: a broadcast). All masks of a call (Q, K
// and V) are one launch. More than kMaxRowsPerPass rows are done in passes, and later passes re-read patch and
// curr (from L2 for GPT-2-small sizes).
//
// Not tuned on a GPU (none was available when this was written): block sizes and the row cap are first guesses;
// the checker reports GB/s against the device's peak to tune them.
#include "autocircuit/edge_patch_cuda.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "autocircuit/cuda_check.h"

namespace autocircuit::kernels::cuda {
namespace {

// ---- helpers ----

constexpr int kBlock = 128;        // threads per block of the column kernels, one (token, d) column each
constexpr int kSourceChunk = 64;   // sources whose mask rows are staged in shared memory at a time
constexpr int kGradBlock = 256;    // threads per block of the mask-gradient kernel

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

__device__ __forceinline__ float toFloat(float x) { return x; }
__device__ __forceinline__ float toFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float toFloat(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T fromFloat(float x);
template <> __device__ __forceinline__ float fromFloat<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half fromFloat<__half>(float x) { return __float2half_rn(x); }

// The checksum's bits of one element (edge_patch_cuda.h): 16-bit values shifted left by 16, like the CPU path.
__device__ __forceinline__ uint32_t checksumBits(float x) { return __float_as_uint(x); }
__device__ __forceinline__ uint32_t checksumBits(__nv_bfloat16 x) { return uint32_t(__bfloat16_as_ushort(x)) << 16; }
__device__ __forceinline__ uint32_t checksumBits(__half x) { return uint32_t(__half_as_ushort(x)) << 16; }

struct ChecksumAcc {
  uint32_t h0 = 0, h1 = 0;
  template <typename T> __device__ __forceinline__ void add(T x) {
    const uint32_t u = checksumBits(x);
    h0 += u;
    h1 += u * kChecksumMultiplier;
  }
  // Called by every thread of the block (no early return before it); one atomic per warp.
  __device__ __forceinline__ void publish(uint32_t* target) {
    for (int off = 16; off > 0; off >>= 1) {
      h0 += __shfl_down_sync(0xffffffffu, h0, off);
      h1 += __shfl_down_sync(0xffffffffu, h1, off);
    }
    if ((threadIdx.x & 31) == 0) {
      atomicAdd(target, h0);
      atomicAdd(target + 1, h1);
    }
  }
};

__device__ __forceinline__ int64_t groupOf(const Shape& s, int64_t t) {
  const int64_t b = t / s.seq, q = t % s.seq;
  return (s.maskBatch ? b * (s.maskSeq ? s.seq : 1) : 0) + (s.maskSeq ? q : 0);
}

// Address of absolute row r for token t and column d in the outputs (or gradients), or nullptr.
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

// Where rows [r0, r0 + rc) of the launch live, in shared memory: row r of token t, column d is
// base[r][t * stride[r] + d] (base nullptr: a row without output or gradient). Filled once per block, so the
// inner loops do not search the masks for every element. Ends with a barrier.
template <typename T>
__device__ __forceinline__ void fillRowTable(const MaskRows& rows, int64_t r0, int rc, int64_t dModel, T** base,
                                             int64_t* stride) {
  for (int r = threadIdx.x; r < rc; r += blockDim.x) {
    base[r] = nullptr;
    stride[r] = 0;
    for (int m = 0; m < rows.count; ++m) {
      const int64_t h = r0 + r - rows.rowOffset[m];
      if (h >= 0 && h < rows.heads[m]) {
        if (rows.base[m] != nullptr) base[r] = static_cast<T*>(rows.base[m]) + h * dModel;
        stride[r] = rows.heads[m] * dModel;
      }
    }
  }
  __syncthreads();
}

// ---- kernels ----

// One pass over rows [r0, r0 + rc) of the launch, rc <= RC. grid: (ceil(D / kBlock), min(T, 65535)).
template <typename T, int RC>
__global__ void __launch_bounds__(kBlock) forward_kernel(Shape s, const T* __restrict__ input,
                                                         const T* __restrict__ patch, const T* __restrict__ curr,
                                                         const float* __restrict__ w, MaskRows outs, int64_t r0,
                                                         int rc, uint32_t* checksum) {
  __shared__ float ws[kSourceChunk * RC];
  __shared__ T* rowBase[RC];
  __shared__ int64_t rowStride[RC];
  fillRowTable<T>(outs, r0, rc, s.dModel, rowBase, rowStride);
  const int64_t tokens = s.batch * s.seq;
  const int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool live = d < s.dModel;
  ChecksumAcc sum;
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
#pragma unroll 4
        for (int i = 0; i < ic; ++i) {
          const int64_t at = ((i0 + i) * tokens + t) * s.dModel + d;
          const T p = patch[at], c = curr[at];
          if (checksum != nullptr) {
            sum.add(p);
            sum.add(c);
          }
          const float diff = toFloat(p) - toFloat(c);
#pragma unroll
          for (int r = 0; r < RC; ++r) acc[r] += ws[i * RC + r] * diff;
        }
      }
    }
    if (live) {
      const float x = toFloat(input[t * s.dModel + d]);
#pragma unroll
      for (int r = 0; r < RC; ++r) {
        if (r < rc && rowBase[r] != nullptr) rowBase[r][t * rowStride[r] + d] = fromFloat<T>(x + acc[r]);
      }
    }
  }
  if (checksum != nullptr) sum.publish(checksum);
}

// Sparse binary masks: rows [first, end) of the launch. grid: (ceil(D / kBlock), min(T, 65535)).
template <typename T>
__global__ void __launch_bounds__(kBlock) forward_sparse_kernel(Shape s, const T* __restrict__ input,
                                                                const T* __restrict__ patch,
                                                                const T* __restrict__ curr, SparseRows sp,
                                                                const float* __restrict__ deltaSum, MaskRows outs,
                                                                int64_t first, int64_t end) {
  const int64_t tokens = s.batch * s.seq;
  const int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= s.dModel) return;  // no block-wide synchronisation below
  for (int64_t t = blockIdx.y; t < tokens; t += gridDim.y) {
    const int64_t g = groupOf(s, t);
    float total = 0.f;
    if (sp.sumAll[g]) {
      if (deltaSum != nullptr) {
        total = deltaSum[t * s.dModel + d];
      } else {
        for (int64_t i = 0; i < s.nIn; ++i) {
          const int64_t at = (i * tokens + t) * s.dModel + d;
          total += toFloat(patch[at]) - toFloat(curr[at]);
        }
      }
    }
    const float x = toFloat(input[t * s.dModel + d]);
    for (int64_t r = first; r < end; ++r) {
      T* o = rowAddress<T>(outs, r, t, d, s.dModel);
      if (o == nullptr) continue;
      const int64_t row = g * s.rows + r;
      const bool maj = sp.majority[row] != 0;
      float acc = maj ? total : 0.f;
      const float sign = maj ? -1.f : 1.f;
      for (int64_t k = sp.rowStart[row]; k < sp.rowStart[row + 1]; ++k) {
        const int64_t at = (int64_t(sp.minority[k]) * tokens + t) * s.dModel + d;
        acc += sign * (toFloat(patch[at]) - toFloat(curr[at]));
      }
      *o = fromFloat<T>(x + acc);
    }
  }
}

// deltaSum[e] += sum_{from <= i < to} (patch[i][e] - curr[i][e]) for the T * D elements e.
template <typename T>
__global__ void running_sum_kernel(int64_t elements, const T* __restrict__ patch, const T* __restrict__ curr,
                                   int64_t from, int64_t to, float* __restrict__ deltaSum) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < elements;
       e += int64_t(gridDim.x) * blockDim.x) {
    float acc = 0.f;
    for (int64_t i = from; i < to; ++i) acc += toFloat(patch[i * elements + e]) - toFloat(curr[i * elements + e]);
    deltaSum[e] += acc;
  }
}

// One pass over rows [r0, r0 + rc): grad_input += sum_r g_r, grad_curr[i] -= sum_r w[r][i] g_r (first pass of a
// non-accumulating call: = instead of +=).
template <typename T, int RC>
__global__ void __launch_bounds__(kBlock) backward_kernel(Shape s, const float* __restrict__ w, MaskRows grads,
                                                          T* __restrict__ gradInput, T* __restrict__ gradCurr,
                                                          int64_t r0, int rc, bool overwrite) {
  __shared__ float ws[kSourceChunk * RC];
  __shared__ T* rowBase[RC];
  __shared__ int64_t rowStride[RC];
  fillRowTable<T>(grads, r0, rc, s.dModel, rowBase, rowStride);
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
      if (live && r < rc && rowBase[r] != nullptr) gr[r] = toFloat(rowBase[r][t * rowStride[r] + d]);
      sum += gr[r];
    }
    if (live && gradInput != nullptr) {
      T* o = gradInput + t * s.dModel + d;
      *o = fromFloat<T>(overwrite ? sum : toFloat(*o) + sum);
    }
    if (gradCurr == nullptr) continue;  // uniform across the block: no barrier is skipped by some threads only
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

// Tokens in an order where each mask group's tokens are contiguous (s-major for a seq-only mask), as the CPU
// backward does, so that a block flushes its partial mask gradient only when the group changes.
__device__ __forceinline__ int64_t tokenOfVirtual(const Shape& s, int64_t v) {
  if (s.maskSeq && !s.maskBatch) return (v % s.batch) * s.seq + v / s.batch;
  return v;
}

// Adds each warp's partial sums acc[r] (r < rc) into gradW[g, r0 + r, i] and clears them. Every thread of the
// block calls it.
template <int RC>
__device__ __forceinline__ void flushMaskGrad(float (&acc)[RC], int rc, float* gradW, const Shape& s, int64_t g,
                                              int64_t r0, int64_t i) {
#pragma unroll
  for (int r = 0; r < RC; ++r) {
    float v = acc[r];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if ((threadIdx.x & 31) == 0 && r < rc && v != 0.f) atomicAdd(gradW + (g * s.rows + r0 + r) * s.nIn + i, v);
    acc[r] = 0.f;
  }
}

// Mask gradient, rows [r0, r0 + rc): block (i, chunk) sums gradOut_r[t, d] * (patch[i, t, d] - curr[i, t, d])
// over the virtual tokens [chunk * perChunk, ...) and all d. grid: (nIn, chunks); block kGradBlock.
template <typename T, int RC>
__global__ void __launch_bounds__(kGradBlock) mask_grad_kernel(Shape s, const T* __restrict__ patch,
                                                               const T* __restrict__ curr, MaskRows grads,
                                                               float* __restrict__ gradW, int64_t r0, int rc,
                                                               int64_t perChunk, uint32_t* checksum) {
  __shared__ T* rowBase[RC];
  __shared__ int64_t rowStride[RC];
  fillRowTable<T>(grads, r0, rc, s.dModel, rowBase, rowStride);
  const int64_t tokens = s.batch * s.seq;
  const int64_t i = blockIdx.x;
  const int64_t v0 = int64_t(blockIdx.y) * perChunk;
  const int64_t v1 = v0 + perChunk < tokens ? v0 + perChunk : tokens;
  float acc[RC];
#pragma unroll
  for (int r = 0; r < RC; ++r) acc[r] = 0.f;
  ChecksumAcc sum;
  int64_t current = -1;
  for (int64_t v = v0; v < v1; ++v) {
    const int64_t t = tokenOfVirtual(s, v);
    const int64_t g = groupOf(s, t);
    if (g != current) {
      if (current >= 0) flushMaskGrad<RC>(acc, rc, gradW, s, current, r0, i);
      current = g;
    }
    for (int64_t d = threadIdx.x; d < s.dModel; d += blockDim.x) {
      const int64_t at = (i * tokens + t) * s.dModel + d;
      const T p = patch[at], c = curr[at];
      if (checksum != nullptr) {
        sum.add(p);
        sum.add(c);
      }
      const float diff = toFloat(p) - toFloat(c);
#pragma unroll
      for (int r = 0; r < RC; ++r) {
        if (r < rc && rowBase[r] != nullptr) acc[r] += toFloat(rowBase[r][t * rowStride[r] + d]) * diff;
      }
    }
  }
  if (current >= 0) flushMaskGrad<RC>(acc, rc, gradW, s, current, r0, i);
  if (checksum != nullptr) sum.publish(checksum);
}

// ---- launchers ----

// Rows of one launch: [first, end) in absolute row numbers.
void launchRange(const MaskRows& rows, int64_t& first, int64_t& end) {
  first = rows.rowOffset[0];
  end = rows.rowOffset[rows.count - 1] + rows.heads[rows.count - 1];
}

// Calls fn(std::integral_constant<int, RC>) with the smallest RC in {16, 32, 64} that holds rc rows (few variants:
// each is compiled for 3 dtypes x 3 kernels x every target architecture).
template <typename Fn>
void dispatchRows(int rc, Fn&& fn) {
  if (rc <= 16) fn(std::integral_constant<int, 16>{});
  else if (rc <= 32) fn(std::integral_constant<int, 32>{});
  else fn(std::integral_constant<int, 64>{});
}

// Calls fn(T{}) for the element type of dtype.
template <typename Fn>
void dispatchType(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32: fn(float{}); break;
    case DType::BF16: fn(__nv_bfloat16{}); break;
    case DType::F16: fn(__half{}); break;
    default: throw std::runtime_error("edge_patch (CUDA): unknown dtype " + std::to_string(int(dtype)));
  }
}

// Splits the rows of a launch into passes of at most kMaxRowsPerPass.
struct Passes {
  int64_t first = 0, end = 0, count = 1;
  int perPass = 0;
  explicit Passes(const MaskRows& rows) {
    launchRange(rows, first, end);
    count = std::max<int64_t>(1, ceil_div(end - first, kMaxRowsPerPass));
    perPass = int(ceil_div(end - first, count));
  }
  int64_t start(int64_t p) const { return first + p * perPass; }
  int rows(int64_t p) const { return int(std::min<int64_t>(perPass, end - start(p))); }
};

void checkLaunch(const MaskRows& rows, const char* op) {
  if (rows.count <= 0 || rows.count > kMaxMasks) {
    throw std::runtime_error(std::string(op) + ": 1 to " + std::to_string(kMaxMasks) + " masks per launch, got " +
                             std::to_string(rows.count));
  }
}

dim3 columnGrid(const Shape& s) {
  return dim3(unsigned(ceil_div(s.dModel, kBlock)), unsigned(std::min<int64_t>(s.batch * s.seq, 65535)));
}

}  // namespace

void edge_patch_forward(DType dtype, const Shape& s, const void* input, const void* patch, const void* curr,
                        const float* w, const MaskRows& outs, uint32_t* checksum, cudaStream_t stream) {
  checkLaunch(outs, "edge_patch_forward");
  if (s.batch * s.seq == 0 || s.dModel == 0) return;
  const Passes passes(outs);
  dispatchType(dtype, [&](auto zero) {
    using T = decltype(zero);
    for (int64_t p = 0; p < passes.count; ++p) {
      uint32_t* sum = p == 0 ? checksum : nullptr;  // patch and curr are checksummed once
      dispatchRows(passes.perPass, [&](auto cap) {
        constexpr int RC = decltype(cap)::value;
        forward_kernel<T, RC><<<columnGrid(s), kBlock, 0, stream>>>(
            s, static_cast<const T*>(input), static_cast<const T*>(patch), static_cast<const T*>(curr), w, outs,
            passes.start(p), passes.rows(p), sum);
      });
      AC_CUDA_CHECK(cudaGetLastError());
    }
  });
}

void edge_patch_forward_sparse(DType dtype, const Shape& s, const void* input, const void* patch,
                               const void* curr, const SparseRows& sparse, const float* deltaSum,
                               const MaskRows& outs, cudaStream_t stream) {
  checkLaunch(outs, "edge_patch_forward_sparse");
  if (s.batch * s.seq == 0 || s.dModel == 0) return;
  int64_t first, end;
  launchRange(outs, first, end);
  dispatchType(dtype, [&](auto zero) {
    using T = decltype(zero);
    forward_sparse_kernel<T><<<columnGrid(s), kBlock, 0, stream>>>(
        s, static_cast<const T*>(input), static_cast<const T*>(patch), static_cast<const T*>(curr), sparse, deltaSum,
        outs, first, end);
    AC_CUDA_CHECK(cudaGetLastError());
  });
}

void edge_patch_running_sum(DType dtype, const Shape& s, const void* patch, const void* curr, int64_t from,
                            int64_t to, float* deltaSum, cudaStream_t stream) {
  const int64_t elements = s.batch * s.seq * s.dModel;
  if (elements == 0 || from >= to) return;
  if (from < 0 || to > s.nIn) {
    throw std::runtime_error("edge_patch_running_sum: sources [" + std::to_string(from) + ", " + std::to_string(to) +
                             ") outside [0, " + std::to_string(s.nIn) + ")");
  }
  const unsigned blocks = unsigned(std::min<int64_t>(ceil_div(elements, 256), 1 << 16));
  dispatchType(dtype, [&](auto zero) {
    using T = decltype(zero);
    running_sum_kernel<T><<<blocks, 256, 0, stream>>>(elements, static_cast<const T*>(patch),
                                                      static_cast<const T*>(curr), from, to, deltaSum);
    AC_CUDA_CHECK(cudaGetLastError());
  });
}

void edge_patch_backward(DType dtype, const Shape& s, const float* w, const MaskRows& grads, void* gradInput,
                         void* gradCurr, bool accumulate, cudaStream_t stream) {
  checkLaunch(grads, "edge_patch_backward");
  if (s.batch * s.seq == 0 || s.dModel == 0) return;
  const Passes passes(grads);
  dispatchType(dtype, [&](auto zero) {
    using T = decltype(zero);
    for (int64_t p = 0; p < passes.count; ++p) {
      const bool overwrite = !accumulate && p == 0;
      dispatchRows(passes.perPass, [&](auto cap) {
        constexpr int RC = decltype(cap)::value;
        backward_kernel<T, RC><<<columnGrid(s), kBlock, 0, stream>>>(
            s, w, grads, static_cast<T*>(gradInput), static_cast<T*>(gradCurr), passes.start(p), passes.rows(p),
            overwrite);
      });
      AC_CUDA_CHECK(cudaGetLastError());
    }
  });
}

void edge_patch_mask_grad(DType dtype, const Shape& s, const void* patch, const void* curr, const MaskRows& grads,
                          float* gradW, uint32_t* checksum, cudaStream_t stream) {
  checkLaunch(grads, "edge_patch_mask_grad");
  const int64_t tokens = s.batch * s.seq;
  if (tokens == 0 || s.dModel == 0 || s.nIn == 0) return;
  if (s.nIn > 0x7fffffff) throw std::runtime_error("edge_patch_mask_grad: nIn too large");
  const Passes passes(grads);
  // About 32 token chunks per source: enough blocks to fill a GPU for nIn >= 10, few atomics per mask entry.
  const int64_t perChunk = std::max<int64_t>(1, ceil_div(tokens, 32));
  const dim3 grid(unsigned(s.nIn), unsigned(ceil_div(tokens, perChunk)));
  dispatchType(dtype, [&](auto zero) {
    using T = decltype(zero);
    for (int64_t p = 0; p < passes.count; ++p) {
      uint32_t* sum = p == 0 ? checksum : nullptr;
      dispatchRows(passes.perPass, [&](auto cap) {
        constexpr int RC = decltype(cap)::value;
        mask_grad_kernel<T, RC><<<grid, kGradBlock, 0, stream>>>(s, static_cast<const T*>(patch),
                                                                 static_cast<const T*>(curr), grads, gradW,
                                                                 passes.start(p), passes.rows(p), perChunk, sum);
      });
      AC_CUDA_CHECK(cudaGetLastError());
    }
  });
}

}  // namespace autocircuit::kernels::cuda
