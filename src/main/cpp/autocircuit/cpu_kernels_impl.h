// The CPU tile kernels of edge_patch. Included only by cpu_kernels_baseline.cpp and cpu_kernels_avx2.cpp,
// which define AC_ISA_NAMESPACE (the namespace of the variant) and AC_VEC_BYTES (16 or 32) first.
//
// Everything here has internal linkage (an anonymous namespace) and uses neither ATen nor the STL: see
// cpu_kernels.h for why. Vectors are GCC/Clang vector extensions, so the same source becomes SSE2 code in
// the baseline build and AVX2/FMA code in the x86-64-v3 build, with no intrinsics.
//
// Work is done per tile: one token t and a range of at most kMaxTile model dimensions.
//   forward:  delta[i][:] = patch[i,t,:] - curr[i,t,:]            (fp32, in a cache-resident buffer)
//             out[r][:]   = input[t,:] + sum_i W_g[r][i] * delta[i][:]     (nnBlock, MR x NR at a time)
//   backward: G[r][:] = grad_out rows of token t                   (fp32 buffer)
//             grad_input[t,:] = sum_r G[r][:]
//             grad_curr[i,t,:] = -sum_r W_g[r][i] * G[r][:]                  (nnBlock)
//             delta recomputed from patch and curr, as in forward (never stored: see kernels.h)
//             grad_W_g[r][i] += sum_d G[r][d] * delta[i][d]       (ntBlock: lane-wise float sums per token, then double)
// The NN products are small GEMMs with a short K (nIn or R) whose B operand (delta or G) is read from L1/L2
// once per MR rows, so the pass over patch and curr is the only stream from memory.
#pragma once

#ifndef AC_ISA_NAMESPACE
#error "define AC_ISA_NAMESPACE before including cpu_kernels_impl.h"
#endif
#ifndef AC_VEC_BYTES
#error "define AC_VEC_BYTES before including cpu_kernels_impl.h"
#endif

#include <new>

#include "autocircuit/cpu_kernels.h"

namespace autocircuit::kernels::cpu::AC_ISA_NAMESPACE {
namespace {

// ---- vectors and scalars ----

constexpr int VW = AC_VEC_BYTES / 4;  // floats per vector
typedef float Vec __attribute__((vector_size(AC_VEC_BYTES)));

constexpr int NR = 2 * VW;  // columns of an nnBlock (two vectors)
constexpr int MR = 6;       // rows of an nnBlock: 12 accumulators + 2 B vectors + 1 broadcast <= 16 registers
constexpr int NT_M = 3;     // ntBlock: 3 x 3 accumulators + 3 A vectors + 1 B vector
constexpr int NT_N = 3;
constexpr int64_t kMaxTile = 512;  // model dimensions per tile: delta tile = nIn x 512 floats stays in L2

inline Vec loadA(const float* p) { return *reinterpret_cast<const Vec*>(p); }  // aligned
inline void storeA(float* p, Vec v) { *reinterpret_cast<Vec*>(p) = v; }
inline Vec loadU(const float* p) {
  Vec v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void storeU(float* p, Vec v) { __builtin_memcpy(p, &v, sizeof v); }

typedef uint32_t VecU32 __attribute__((vector_size(AC_VEC_BYTES)));
typedef uint16_t VecU16 __attribute__((vector_size(AC_VEC_BYTES / 2)));

inline VecU32 bitsOf(Vec v) {
  VecU32 u;
  __builtin_memcpy(&u, &v, sizeof u);
  return u;
}
inline Vec floatsOf(VecU32 u) {
  Vec v;
  __builtin_memcpy(&v, &u, sizeof v);
  return v;
}

// VW elements of T to floats and back (unaligned). bfloat16 is its float32's upper half: widen and shift;
// rounding back is to nearest even with NaN mapped to 0x7fc0, bit for bit as c10::BFloat16 does.
template <typename T> inline Vec loadVec(const T* p);
template <> inline Vec loadVec<float>(const float* p) { return loadU(p); }
template <> inline Vec loadVec<uint16_t>(const uint16_t* p) {
  VecU16 h;
  __builtin_memcpy(&h, p, sizeof h);
  return floatsOf(__builtin_convertvector(h, VecU32) << 16);
}
template <typename T> inline void storeVec(T* p, Vec v);
template <> inline void storeVec<float>(float* p, Vec v) { storeU(p, v); }
template <> inline void storeVec<uint16_t>(uint16_t* p, Vec v) {
  const VecU32 u = bitsOf(v);
  VecU32 rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  rounded = (u & 0x7fffffffu) > 0x7f800000u ? VecU32{} + 0x7fc0u : rounded;
  const VecU16 h = __builtin_convertvector(rounded, VecU16);
  __builtin_memcpy(p, &h, sizeof h);
}

inline float bf16ToFloat(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
// Round to nearest even, NaN to the canonical quiet NaN: the same bits as c10::BFloat16(float).
inline uint16_t floatToBf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  uint16_t rounded = uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  return (u & 0x7fffffffu) > 0x7f800000u ? uint16_t(0x7fc0) : rounded;
}

template <typename T> inline float toFloat(T x);
template <> inline float toFloat<float>(float x) { return x; }
template <> inline float toFloat<uint16_t>(uint16_t x) { return bf16ToFloat(x); }
template <typename T> inline T fromFloat(float x);
template <> inline float fromFloat<float>(float x) { return x; }
template <> inline uint16_t fromFloat<uint16_t>(float x) { return floatToBf16(x); }

inline int64_t minI(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t roundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Tile width for a model dimension D: the fewest tiles of at most kMaxTile, evened out, rounded up to NR.
inline int64_t tileWidth(int64_t dModel) {
  int64_t tiles = (dModel + kMaxTile - 1) / kMaxTile;
  if (tiles < 1) tiles = 1;
  return roundUp((dModel + tiles - 1) / tiles, NR);
}

// A 64-byte aligned scratch buffer (RAII; freed on every path, exceptions included).
template <typename T>
class Buffer {
 public:
  explicit Buffer(int64_t n)
      : p_(n > 0 ? static_cast<T*>(::operator new(size_t(n) * sizeof(T), std::align_val_t(64))) : nullptr) {}
  ~Buffer() {
    if (p_ != nullptr) ::operator delete(p_, std::align_val_t(64));
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* get() const { return p_; }

 private:
  T* p_;
};
using FloatBuffer = Buffer<float>;

// ---- micro-kernels ----

// acc[m][0..1] = sum_k A[k * lda + m] * B[k * ldb + (0..NR)], m < M. B is NR-aligned.
template <int M>
inline void nnBlock(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, Vec (&acc)[MR][2]) {
  for (int m = 0; m < M; ++m) acc[m][0] = acc[m][1] = Vec{};
  for (int64_t k = 0; k < K; ++k) {
    const Vec b0 = loadA(B + k * ldb);
    const Vec b1 = loadA(B + k * ldb + VW);
    const float* a = A + k * lda;
    for (int m = 0; m < M; ++m) {
      const float am = a[m];  // scalar * vector: a broadcast
      acc[m][0] += am * b0;
      acc[m][1] += am * b1;
    }
  }
}

// acc[(m * accRow + n) * VW ...] += lane-wise sum_k A[m * lda + k] * B[n * ldb + k], k over `steps` vectors.
template <int M, int N>
inline void ntBlock(int64_t steps, const float* A, int64_t lda, const float* B, int64_t ldb, float* acc,
                    int64_t accRow) {
  Vec c[M][N];
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) c[m][n] = loadA(acc + (m * accRow + n) * VW);
  for (int64_t k = 0; k < steps; ++k) {
    Vec a[M];
    for (int m = 0; m < M; ++m) a[m] = loadA(A + m * lda + k * VW);
    for (int n = 0; n < N; ++n) {
      const Vec b = loadA(B + n * ldb + k * VW);
      for (int m = 0; m < M; ++m) c[m][n] += a[m] * b;
    }
  }
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) storeA(acc + (m * accRow + n) * VW, c[m][n]);
}

template <int N>
inline void ntRow(int m, int64_t steps, const float* A, int64_t lda, const float* B, int64_t ldb, float* acc,
                  int64_t accRow) {
  switch (m) {
    case 1: ntBlock<1, N>(steps, A, lda, B, ldb, acc, accRow); break;
    case 2: ntBlock<2, N>(steps, A, lda, B, ldb, acc, accRow); break;
    default: ntBlock<3, N>(steps, A, lda, B, ldb, acc, accRow); break;
  }
}

inline void ntAny(int m, int n, int64_t steps, const float* A, int64_t lda, const float* B, int64_t ldb,
                  float* acc, int64_t accRow) {
  switch (n) {
    case 1: ntRow<1>(m, steps, A, lda, B, ldb, acc, accRow); break;
    case 2: ntRow<2>(m, steps, A, lda, B, ldb, acc, accRow); break;
    default: ntRow<3>(m, steps, A, lda, B, ldb, acc, accRow); break;
  }
}

// Stores bias[j] + sign * acc[m][.][j] for j < cols into rows dst[m]: the epilogue of an nnBlock.
// bias may be nullptr (no bias).
template <typename T, int M>
inline void storeBlock(const Vec (&acc)[MR][2], T* const* dst, const T* bias, float sign, int64_t cols) {
  if (cols == NR) {
    Vec b0{}, b1{};
    if (bias != nullptr) {
      b0 = loadVec<T>(bias);
      b1 = loadVec<T>(bias + VW);
    }
    for (int m = 0; m < M; ++m) {
      storeVec<T>(dst[m], b0 + acc[m][0] * sign);
      storeVec<T>(dst[m] + VW, b1 + acc[m][1] * sign);
    }
    return;
  }
  for (int m = 0; m < M; ++m) {
    alignas(64) float tmp[NR];
    storeA(tmp, acc[m][0]);
    storeA(tmp + VW, acc[m][1]);
    for (int64_t j = 0; j < cols; ++j) {
      float v = sign * tmp[j];
      if (bias != nullptr) v += toFloat<T>(bias[j]);
      dst[m][j] = fromFloat<T>(v);
    }
  }
}

// One nnBlock of M rows with its epilogue.
template <typename T, int M>
inline void nnStore(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, T* const* dst,
                    const T* bias, float sign, int64_t cols) {
  Vec acc[MR][2];
  nnBlock<M>(K, A, lda, B, ldb, acc);
  storeBlock<T, M>(acc, dst, bias, sign, cols);
}

template <typename T>
inline void nnStoreAny(int m, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                       T* const* dst, const T* bias, float sign, int64_t cols) {
  switch (m) {
    case 1: nnStore<T, 1>(K, A, lda, B, ldb, dst, bias, sign, cols); break;
    case 2: nnStore<T, 2>(K, A, lda, B, ldb, dst, bias, sign, cols); break;
    case 3: nnStore<T, 3>(K, A, lda, B, ldb, dst, bias, sign, cols); break;
    case 4: nnStore<T, 4>(K, A, lda, B, ldb, dst, bias, sign, cols); break;
    case 5: nnStore<T, 5>(K, A, lda, B, ldb, dst, bias, sign, cols); break;
    default: nnStore<T, 6>(K, A, lda, B, ldb, dst, bias, sign, cols); break;
  }
}

// dst[0..np) = fp32(src[0..n)), zero-padded; dst aligned.
template <typename T>
inline void loadRow(float* dst, const T* src, int64_t n, int64_t np) {
  int64_t j = 0;
  for (; j + VW <= n; j += VW) storeA(dst + j, loadVec<T>(src + j));
  for (; j < n; ++j) dst[j] = toFloat<T>(src[j]);
  for (; j < np; ++j) dst[j] = 0.f;
}

// ---- patch - curr, with the checksum ----

// Lane-wise checksum (cpu_kernels.h): h0 += bits, h1 += bits * kChecksumMultiplier, modulo 2^32.
struct Checksum {
  VecU32 h0{}, h1{};
  void add(Vec v) {
    const VecU32 u = bitsOf(v);
    h0 += u;
    h1 += u * kChecksumMultiplier;
  }
  void add(float x) {
    uint32_t u;
    __builtin_memcpy(&u, &x, 4);
    h0[0] += u;
    h1[0] += u * kChecksumMultiplier;
  }
  // Adds the lane sums into out[0..1] (shared by threads: atomic).
  void publish(uint32_t* out) const {
    uint32_t s0 = 0, s1 = 0;
    for (int k = 0; k < VW; ++k) {
      s0 += h0[k];
      s1 += h1[k];
    }
    __atomic_fetch_add(&out[0], s0, __ATOMIC_RELAXED);
    __atomic_fetch_add(&out[1], s1, __ATOMIC_RELAXED);
  }
};

// tile[i][0..np) = patch[i, t, d0..d0+n) - curr[i, t, d0..d0+n) in fp32, zero-padded; checksum when given.
template <typename T>
inline void deltaTile(const T* patch, const T* curr, int64_t nIn, int64_t tokens, int64_t t, int64_t D, int64_t d0,
                      int64_t n, int64_t np, float* tile, Checksum* sum) {
  for (int64_t i = 0; i < nIn; ++i) {
    const int64_t at = (i * tokens + t) * D + d0;
    const T* p = patch + at;
    const T* c = curr + at;
    float* row = tile + i * np;
    int64_t j = 0;
    if (sum != nullptr) {
      for (; j + VW <= n; j += VW) {
        const Vec pv = loadVec<T>(p + j), cv = loadVec<T>(c + j);
        sum->add(pv);
        sum->add(cv);
        storeA(row + j, pv - cv);
      }
      for (; j < n; ++j) {
        const float pf = toFloat<T>(p[j]), cf = toFloat<T>(c[j]);
        sum->add(pf);
        sum->add(cf);
        row[j] = pf - cf;
      }
    } else {
      for (; j + VW <= n; j += VW) storeA(row + j, loadVec<T>(p + j) - loadVec<T>(c + j));
      for (; j < n; ++j) row[j] = toFloat<T>(p[j]) - toFloat<T>(c[j]);
    }
    for (; j < np; ++j) row[j] = 0.f;
  }
}

// ---- forward ----

template <typename T>
void forwardTokens(const ForwardArgs& a, int64_t tokenBegin, int64_t tokenEnd) {
  const int64_t D = a.dModel, nIn = a.nIn, R = a.out.count, tokens = a.tokens;
  const int64_t tile = tileWidth(D);
  FloatBuffer delta(nIn * tile);  // [nIn][np]
  const T* input = static_cast<const T*>(a.input);
  const T* patch = static_cast<const T*>(a.patch);
  const T* curr = static_cast<const T*>(a.curr);
  Checksum sum;
  T* dst[MR];

  for (int64_t t = tokenBegin; t < tokenEnd; ++t) {
    const float* wt = a.wt + groupOfToken(a.groups, t) * nIn * R;  // [nIn][R]
    for (int64_t d0 = 0; d0 < D; d0 += tile) {
      const int64_t n = minI(tile, D - d0), np = roundUp(n, NR);
      deltaTile<T>(patch, curr, nIn, tokens, t, D, d0, n, np, delta.get(), a.checksum != nullptr ? &sum : nullptr);
      const T* x = input + t * D + d0;
      for (int64_t n0 = 0; n0 < np; n0 += NR) {
        const int64_t cols = minI(NR, n - n0);
        for (int64_t r0 = 0; r0 < R; r0 += MR) {
          const int m = int(minI(MR, R - r0));
          for (int k = 0; k < m; ++k)
            dst[k] = static_cast<T*>(a.out.base[r0 + k]) + t * a.out.tokenStride[r0 + k] + d0 + n0;
          nnStoreAny<T>(m, nIn, wt + r0, R, delta.get() + n0, np, dst, x + n0, 1.f, cols);
        }
      }
    }
  }
  if (a.checksum != nullptr) sum.publish(a.checksum);
}

// ---- forward, binary masks in sparse form (SparseMasks in cpu_kernels.h) ----

template <typename T>
void forwardSparseTokens(const ForwardArgs& a, int64_t tokenBegin, int64_t tokenEnd) {
  const SparseMasks& sp = *a.sparse;
  const int64_t D = a.dModel, nIn = a.nIn, R = a.out.count, tokens = a.tokens;
  const int64_t tile = tileWidth(D);
  FloatBuffer delta(nIn * tile);  // [nIn][np]; only the rows read are filled
  FloatBuffer total(tile);        // sum_i delta[i]
  const T* input = static_cast<const T*>(a.input);
  const T* patch = static_cast<const T*>(a.patch);
  const T* curr = static_cast<const T*>(a.curr);
  Checksum sum;

  for (int64_t t = tokenBegin; t < tokenEnd; ++t) {
    const int64_t g = groupOfToken(a.groups, t);
    const bool all = sp.sumAll[g] != 0;
    const bool totalGiven = all && a.deltaSum != nullptr;
    for (int64_t d0 = 0; d0 < D; d0 += tile) {
      const int64_t n = minI(tile, D - d0), np = roundUp(n, NR);
      if (all && !totalGiven) {
        deltaTile<T>(patch, curr, nIn, tokens, t, D, d0, n, np, delta.get(), a.checksum != nullptr ? &sum : nullptr);
        float* s = total.get();
        for (int64_t j = 0; j < np; j += VW) storeA(s + j, Vec{});
        for (int64_t i = 0; i < nIn; ++i) {
          const float* row = delta.get() + i * np;
          for (int64_t j = 0; j < np; j += VW) storeA(s + j, loadA(s + j) + loadA(row + j));
        }
      } else {
        for (int64_t k = sp.neededStart[g]; k < sp.neededStart[g + 1]; ++k) {
          const int64_t i = sp.needed[k];
          const int64_t at = (i * tokens + t) * D + d0;
          float* row = delta.get() + i * np;
          int64_t j = 0;
          for (; j + VW <= n; j += VW) storeA(row + j, loadVec<T>(patch + at + j) - loadVec<T>(curr + at + j));
          for (; j < n; ++j) row[j] = toFloat<T>(patch[at + j]) - toFloat<T>(curr[at + j]);
          for (; j < np; ++j) row[j] = 0.f;
        }
        if (totalGiven) {
          const float* src = a.deltaSum + t * D + d0;
          float* s = total.get();
          int64_t j = 0;
          for (; j < n; ++j) s[j] = src[j];
          for (; j < np; ++j) s[j] = 0.f;
        }
      }
      Vec x[kMaxTile / VW];  // input[t, d0 .. d0 + np) in fp32, zero-padded
      {
        alignas(64) float tmp[VW];
        const T* src = input + t * D + d0;
        for (int64_t j = 0; j < np; j += VW) {
          if (j + VW <= n) {
            x[j / VW] = loadVec<T>(src + j);
          } else {
            for (int k = 0; k < VW; ++k) tmp[k] = j + k < n ? toFloat<T>(src[j + k]) : 0.f;
            x[j / VW] = loadA(tmp);
          }
        }
      }
      for (int64_t r = 0; r < R; ++r) {
        const int64_t gr = g * R + r;
        const bool maj = sp.majority[gr] != 0;
        const int32_t* minority = sp.minority + sp.rowStart[gr];
        const int64_t count = sp.rowStart[gr + 1] - sp.rowStart[gr];
        T* dst = static_cast<T*>(a.out.base[r]) + t * a.out.tokenStride[r] + d0;
        for (int64_t j = 0; j < np; j += VW) {
          Vec acc = x[j / VW];
          Vec diff{};
          for (int64_t k = 0; k < count; ++k) diff += loadA(delta.get() + int64_t(minority[k]) * np + j);
          acc = maj ? acc + loadA(total.get() + j) - diff : acc + diff;
          if (j + VW <= n) {
            storeVec<T>(dst + j, acc);
          } else {
            alignas(64) float tmp[VW];
            storeA(tmp, acc);
            for (int64_t k = 0; j + k < n; ++k) dst[j + k] = fromFloat<T>(tmp[k]);
          }
        }
      }
    }
  }
  if (a.checksum != nullptr) sum.publish(a.checksum);
}

// ---- backward ----

template <typename T>
void backwardRange(const BackwardArgs& a, int64_t vBegin, int64_t vEnd, PartialGroup* head, PartialGroup* tail) {
  const int64_t D = a.dModel, nIn = a.nIn, R = a.gradOut.count, tokens = a.tokens;
  const bool needW = a.gradW != nullptr;
  const int64_t tile = tileWidth(D);
  const int64_t gs = groupSize(a.groups);
  FloatBuffer g(R * tile);                      // [R][np] incoming gradients of token t
  FloatBuffer rowSum(a.gradInput != nullptr ? tile : 0);
  FloatBuffer delta(needW ? nIn * tile : 0);    // [nIn][np]
  FloatBuffer lanes(needW ? R * nIn * VW : 0);  // [R][nIn][VW] lane-wise grad_W of the current token
  Buffer<double> groupSum(needW ? R * nIn : 0);  // [R][nIn] grad_W of the current group (double across tokens)
  const T* patch = static_cast<const T*>(a.patch);
  const T* curr = static_cast<const T*>(a.curr);
  Checksum checksum;
  T* gradInput = static_cast<T*>(a.gradInput);
  T* gradCurr = static_cast<T*>(a.gradCurr);
  T* dst[MR];

  int64_t group = -1;
  auto flush = [&]() {
    const int64_t first = group * gs, last = first + gs;  // virtual token range of the group
    float* target;
    if (first >= vBegin && last <= vEnd) {
      target = a.gradW + group * R * nIn;  // only this chunk touches this group
    } else {
      PartialGroup* slot = first < vBegin ? head : tail;
      slot->group = group;
      target = slot->values;
    }
    const double* sum = groupSum.get();
    for (int64_t e = 0; e < R * nIn; ++e) target[e] = float(sum[e]);
  };

  for (int64_t v = vBegin; v < vEnd; ++v) {
    const int64_t t = tokenOfVirtual(a.groups, v);
    const int64_t gi = groupOfToken(a.groups, t);
    if (needW) {
      if (gi != group) {
        if (group >= 0) flush();
        group = gi;
        double* sum = groupSum.get();
        for (int64_t e = 0; e < R * nIn; ++e) sum[e] = 0.0;
      }
      float* l = lanes.get();
      for (int64_t e = 0; e < R * nIn * VW; ++e) l[e] = 0.f;
    }
    const float* w = a.w + gi * R * nIn;  // [R][nIn]
    for (int64_t d0 = 0; d0 < D; d0 += tile) {
      const int64_t n = minI(tile, D - d0), np = roundUp(n, NR);
      for (int64_t r = 0; r < R; ++r) {
        float* row = g.get() + r * np;
        const T* src = static_cast<const T*>(a.gradOut.base[r]);
        if (src == nullptr) {
          for (int64_t j = 0; j < np; ++j) row[j] = 0.f;
        } else {
          loadRow<T>(row, src + t * a.gradOut.tokenStride[r] + d0, n, np);
        }
      }
      if (gradInput != nullptr) {
        float* __restrict s = rowSum.get();
        for (int64_t j = 0; j < n; ++j) s[j] = 0.f;
        for (int64_t r = 0; r < R; ++r) {
          const float* __restrict row = g.get() + r * np;
          for (int64_t j = 0; j < n; ++j) s[j] += row[j];
        }
        T* __restrict o = gradInput + t * D + d0;
        for (int64_t j = 0; j < n; ++j) o[j] = fromFloat<T>(s[j]);
      }
      if (gradCurr != nullptr) {
        for (int64_t n0 = 0; n0 < np; n0 += NR) {
          const int64_t cols = minI(NR, n - n0);
          for (int64_t i0 = 0; i0 < nIn; i0 += MR) {
            const int m = int(minI(MR, nIn - i0));
            for (int k = 0; k < m; ++k) dst[k] = gradCurr + ((i0 + k) * tokens + t) * D + d0 + n0;
            nnStoreAny<T>(m, R, w + i0, nIn, g.get() + n0, np, dst, nullptr, -1.f, cols);
          }
        }
      }
      if (needW) {
        deltaTile<T>(patch, curr, nIn, tokens, t, D, d0, n, np, delta.get(), &checksum);
        const int64_t steps = np / VW;
        for (int64_t r0 = 0; r0 < R; r0 += NT_M) {
          const int m = int(minI(NT_M, R - r0));
          for (int64_t i0 = 0; i0 < nIn; i0 += NT_N) {
            const int nn = int(minI(NT_N, nIn - i0));
            ntAny(m, nn, steps, g.get() + r0 * np, np, delta.get() + i0 * np, np,
                  lanes.get() + (r0 * nIn + i0) * VW, nIn);
          }
        }
      }
    }
    if (needW) {
      // float32 lanes hold one token's sums (D / VW products each); tokens are added in double, so the error
      // does not grow with batch * seq.
      const float* l = lanes.get();
      double* sum = groupSum.get();
      for (int64_t e = 0; e < R * nIn; ++e) {
        float s = 0.f;
        for (int k = 0; k < VW; ++k) s += l[e * VW + k];
        sum[e] += s;
      }
    }
  }
  if (needW && group >= 0) flush();
  if (needW && a.checksum != nullptr) checksum.publish(a.checksum);
}

// ---- entry points ----

// ---- log-sum-exp over the unembedding (ACDC's KL divergence, see cpu_kernels.h LseArgs) ----
//
// Per panel of kLsePanel columns: the logits of LR rows at a time (LR x NV accumulators, one broadcast of h per row
// and k, the panel's K x 16 weights read from L1), plus the bias, stored into an L1 buffer of up to kLseBufPanels
// panels per row with a lane-wise running maximum (and the optional dot product with weights accumulated); then per
// row and buffer one maximum across lanes (a larger one rescales the running sums once) and exp(logit - max) added
// lane-wise in float over the buffer (a call covers one chunk of panels, see unembed_lse.cpp), the lanes then in
// double. Keeping the exponentials out of the product loop leaves that loop nothing but loads and FMAs, and takes
// the maximum across lanes once per buffer instead of once per panel.
// Each row's accumulation runs over k in order from zero whatever LR is, so a row's result does not depend on how
// many rows are computed with it.

constexpr int NV = static_cast<int>(kLsePanel) / VW;  // vectors per panel row
constexpr int64_t kLseBufPanels = 32;                  // panels per row in the logits buffer (2 KiB per row)
constexpr int LR = VW == 8 ? 4 : 2;  // rows per block: LR x NV accumulators + NV weights + 1 broadcast, well under
                                    // 16 registers (at 6 x 2 GCC spilled one accumulator, a store-forwarding chain)

typedef int32_t VecI32 __attribute__((vector_size(AC_VEC_BYTES)));

// exp(x) for x <= 0 (a logit minus a maximum), 0 below -87.3 (where float exp underflows): Cephes' expf (range
// reduction by ln 2 in two parts, degree-6 polynomial, about 1 ulp). NaN stays NaN.
inline Vec expNonPositive(Vec x) {
  const Vec lo = Vec{} - 87.33654f;
  VecI32 under = x < lo;
  x = (x < lo) ? lo : x;
  Vec fx = x * 1.44269504088896341f + 0.5f;
  VecI32 n = __builtin_convertvector(fx, VecI32);          // truncation toward zero
  Vec nf = __builtin_convertvector(n, Vec);
  VecI32 fix = nf > fx;                                     // -1 where truncation rounded up (fx < 0): floor
  n += fix;
  nf = __builtin_convertvector(n, Vec);
  Vec r = x - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  Vec p = 1.9875691500E-4f + Vec{};
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  Vec y = p * (r * r) + r + 1.0f;
  VecI32 bits = (n + 127) << 23;
  Vec scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  y = y * scale;
  VecI32 ybits;
  __builtin_memcpy(&ybits, &y, sizeof ybits);
  ybits &= ~under;
  __builtin_memcpy(&y, &ybits, sizeof y);
  return y;
}

// The largest lane of v (NaN lanes may be skipped: a NaN logit turns the sum NaN anyway).
inline float laneMax(Vec v) {
#if AC_VEC_BYTES == 32
  Vec t = __builtin_shuffle(v, VecI32{4, 5, 6, 7, 0, 1, 2, 3});
  v = (t > v) ? t : v;
  t = __builtin_shuffle(v, VecI32{2, 3, 0, 1, 6, 7, 4, 5});
  v = (t > v) ? t : v;
  t = __builtin_shuffle(v, VecI32{1, 0, 3, 2, 5, 4, 7, 6});
  v = (t > v) ? t : v;
#else
  static_assert(VW == 4, "laneMax: 16- or 32-byte vectors");
  Vec t = __builtin_shuffle(v, VecI32{2, 3, 0, 1});
  v = (t > v) ? t : v;
  t = __builtin_shuffle(v, VecI32{1, 0, 3, 2});
  v = (t > v) ? t : v;
#endif
  return v[0];
}

template <int M>
void lseRows(const LseArgs& a, int64_t r0, int64_t panelBegin, int64_t panelEnd, float* rowMax, double* rowSum,
             double* rowDot) {
  const int64_t K = a.dModel;
  const float* h = a.h + r0 * K;
  Vec dots[M];
  float mx[M];
  Vec sums[M];
  const float* weightRow[M];  // row (r0 + m) mod W of the weights
  for (int m = 0; m < M; ++m) {
    dots[m] = Vec{};
    mx[m] = -__builtin_inff();
    sums[m] = Vec{};
    weightRow[m] = a.weights == nullptr ? nullptr : a.weights + ((r0 + m) % a.weightRows) * a.padded;
  }
  alignas(64) float logits[M][kLseBufPanels * kLsePanel];
  for (int64_t sub = panelBegin; sub < panelEnd; sub += kLseBufPanels) {
    const int64_t subEnd = sub + kLseBufPanels < panelEnd ? sub + kLseBufPanels : panelEnd;
    Vec top[M];
    for (int m = 0; m < M; ++m) top[m] = Vec{} - __builtin_inff();
    for (int64_t p = sub; p < subEnd; ++p) {
      const float* w = a.wPacked + p * K * kLsePanel;
      Vec acc[M][NV];
      for (int m = 0; m < M; ++m) {
        for (int v = 0; v < NV; ++v) acc[m][v] = Vec{};
      }
      for (int64_t k = 0; k < K; ++k) {
        Vec wv[NV];
        for (int v = 0; v < NV; ++v) wv[v] = loadU(w + k * kLsePanel + v * VW);
        for (int m = 0; m < M; ++m) {
          const float hm = h[m * K + k];
          for (int v = 0; v < NV; ++v) acc[m][v] += hm * wv[v];
        }
      }
      Vec bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = loadU(a.bias + p * kLsePanel + v * VW);
      float* out = &logits[0][0] + (p - sub) * kLsePanel;
      for (int m = 0; m < M; ++m) {
        for (int v = 0; v < NV; ++v) {
          const Vec z = acc[m][v] + bv[v];
          top[m] = (z > top[m]) ? z : top[m];
          storeA(out + m * (kLseBufPanels * kLsePanel) + v * VW, z);
          if (a.weights != nullptr) dots[m] += loadU(weightRow[m] + p * kLsePanel + v * VW) * z;
        }
      }
    }
    const int64_t n = (subEnd - sub) * kLsePanel;
    for (int m = 0; m < M; ++m) {
      const float subMax = laneMax(top[m]);
      if (subMax > mx[m]) {  // a new maximum: rescale the sums once
        sums[m] *= static_cast<float>(__builtin_exp(static_cast<double>(mx[m]) - static_cast<double>(subMax)));
        mx[m] = subMax;
      }
      const Vec mv = Vec{} + mx[m];
      Vec e0 = Vec{}, e1 = Vec{};
      int64_t j = 0;
      for (; j + 2 * VW <= n; j += 2 * VW) {
        e0 += expNonPositive(loadA(&logits[m][j]) - mv);
        e1 += expNonPositive(loadA(&logits[m][j + VW]) - mv);
      }
      for (; j < n; j += VW) e0 += expNonPositive(loadA(&logits[m][j]) - mv);
      sums[m] += e0 + e1;
    }
  }
  for (int m = 0; m < M; ++m) {
    double s = 0.0, d = 0.0;
    for (int l = 0; l < VW; ++l) {
      s += static_cast<double>(sums[m][l]);
      d += static_cast<double>(dots[m][l]);
    }
    rowMax[r0 + m] = mx[m];
    rowSum[r0 + m] = s;
    rowDot[r0 + m] = d;
  }
}

// The last rem < LR rows, as one block of exactly rem rows.
template <int M>
void lseTail(const LseArgs& a, int64_t r0, int rem, int64_t panelBegin, int64_t panelEnd, float* rowMax,
             double* rowSum, double* rowDot) {
  if constexpr (M >= 1) {
    if (rem == M) {
      lseRows<M>(a, r0, panelBegin, panelEnd, rowMax, rowSum, rowDot);
    } else {
      lseTail<M - 1>(a, r0, rem, panelBegin, panelEnd, rowMax, rowSum, rowDot);
    }
  }
}

void logSumExpPanels(const LseArgs& a, int64_t panelBegin, int64_t panelEnd, float* rowMax, double* rowSum,
                     double* rowDot) {
  int64_t r = 0;
  for (; r + LR <= a.rows; r += LR) lseRows<LR>(a, r, panelBegin, panelEnd, rowMax, rowSum, rowDot);
  lseTail<LR - 1>(a, r, static_cast<int>(a.rows - r), panelBegin, panelEnd, rowMax, rowSum, rowDot);
}

void forward(const ForwardArgs& a, int64_t tokenBegin, int64_t tokenEnd) {
  if (a.sparse != nullptr) {
    if (a.dtype == DType::BF16) {
      forwardSparseTokens<uint16_t>(a, tokenBegin, tokenEnd);
    } else {
      forwardSparseTokens<float>(a, tokenBegin, tokenEnd);
    }
    return;
  }
  if (a.dtype == DType::BF16) {
    forwardTokens<uint16_t>(a, tokenBegin, tokenEnd);
  } else {
    forwardTokens<float>(a, tokenBegin, tokenEnd);
  }
}

void backward(const BackwardArgs& a, int64_t vBegin, int64_t vEnd, PartialGroup* head, PartialGroup* tail) {
  if (a.dtype == DType::BF16) {
    backwardRange<uint16_t>(a, vBegin, vEnd, head, tail);
  } else {
    backwardRange<float>(a, vBegin, vEnd, head, tail);
  }
}

}  // namespace

extern const KernelTable kTable;
const KernelTable kTable = {AC_ISA_NAME, &forward, &backward, &logSumExpPanels};

}  // namespace autocircuit::kernels::cpu::AC_ISA_NAMESPACE
