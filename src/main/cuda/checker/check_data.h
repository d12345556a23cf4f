// The checker's test data, defined by a hash of (seed, tensor, index) so that the GPU fills its buffers and the
// float64 host reference recomputes any element on demand without copying gigabytes between them; and the
// 16-bit rounding both sides use (bit operations, so host and device agree exactly). Compiles as plain C++ (g++,
// host tests) and as CUDA (nvcc: every function is also a device function).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define AC_HD __host__ __device__ __forceinline__
#else
#define AC_HD inline
#endif

namespace autocircuit::check {

enum class Dtype : int { F32 = 0, BF16 = 1, F16 = 2 };

AC_HD uint32_t floatBits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
#endif
}
AC_HD float bitsFloat(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, 4);
  return x;
#endif
}

// float -> bfloat16 bits, round to nearest even (finite inputs; NaN stays NaN).
AC_HD uint16_t toBf16Bits(float x) {
  const uint32_t u = floatBits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
AC_HD float bf16BitsToFloat(uint16_t b) { return bitsFloat(uint32_t(b) << 16); }

// float -> IEEE binary16 bits, round to nearest even, with subnormals, overflow to infinity.
AC_HD uint16_t toF16Bits(float x) {
  const uint32_t u = floatBits(x);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t absBits = u & 0x7fffffffu;
  if (absBits > 0x7f800000u) return uint16_t(sign | 0x7e00u);          // NaN
  if (absBits >= 0x477ff000u) return uint16_t(sign | 0x7c00u);         // rounds to >= 65520: infinity
  const int exp = int(absBits >> 23) - 127;
  if (exp >= -14) {                                                    // normal half
    const uint32_t mant = absBits & 0x7fffffu;
    uint32_t h = (uint32_t(exp + 15) << 10) | (mant >> 13);
    const uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;         // carries into the exponent correctly
    return uint16_t(sign | h);
  }
  if (exp < -25) return uint16_t(sign);                                // below half the smallest subnormal
  // subnormal: value = m * 2^-24 with m = round(|x| * 2^24)
  const uint32_t mant = (absBits & 0x7fffffu) | 0x800000u;             // 1.f * 2^23
  const int shift = -exp - 1;                                          // 14 .. 24: mant >> (shift) ~ |x| * 2^24 * 2^?
  // |x| = mant * 2^(exp - 23); in units of 2^-24: mant * 2^(exp + 1) = mant >> (-exp - 1)
  uint32_t h = mant >> shift;
  const uint32_t rest = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (h & 1u))) ++h;
  return uint16_t(sign | h);
}
AC_HD float f16BitsToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1fu) return bitsFloat(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) return bitsFloat(sign | ((exp + 112u) << 23) | (mant << 13));
  // subnormal: mant * 2^-24, exact in float
  const float v = float(mant) * 5.9604644775390625e-8f;
  return sign ? -v : v;
}

// x rounded to dtype and back (what a tensor of that dtype holds).
AC_HD float roundTo(Dtype dtype, float x) {
  switch (dtype) {
    case Dtype::BF16: return bf16BitsToFloat(toBf16Bits(x));
    case Dtype::F16: return f16BitsToFloat(toF16Bits(x));
    default: return x;
  }
}

AC_HD uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Tensors of one case, each with its own stream of values.
enum TensorId : uint64_t { kInput = 1, kPatch = 2, kCurr = 3, kMask = 4, kGradOut = 5, kBinary = 6 };

AC_HD uint64_t hashOf(uint64_t seed, uint64_t tensor, uint64_t index) {
  return splitmix64(seed * 0x100000001b3ull ^ splitmix64(tensor * 0x9e3779b97f4a7c15ull + index));
}

// uniform in [-1, 1), 24 random bits: exact in float.
AC_HD float signedUniform(uint64_t seed, uint64_t tensor, uint64_t index) {
  return float(int32_t(hashOf(seed, tensor, index) >> 40) - (1 << 23)) * (1.0f / float(1 << 23));
}

// An activation element (input, patch, curr, incoming gradient), as stored in dtype.
AC_HD float activation(Dtype dtype, uint64_t seed, uint64_t tensor, uint64_t index) {
  return roundTo(dtype, signedUniform(seed, tensor, index));
}

// Dense mask value in [0, 1) (fp32 masks; the kernels take w as fp32).
AC_HD float denseMask(uint64_t seed, uint64_t index) {
  return float(hashOf(seed, kMask, index) >> 40) * (1.0f / float(1 << 24));
}

// Binary mask value of w[g, r, i] (index = (g * R + r) * nIn + i): each row has a majority value (1 for about
// half the rows) and about minorityPermille / 1000 of its entries take the other value.
AC_HD float binaryMask(uint64_t seed, uint64_t row, uint64_t i, uint64_t nIn, uint32_t minorityPermille) {
  const bool majority = (hashOf(seed, kBinary, row) & 1u) != 0;
  const bool minority = uint32_t(hashOf(seed, kBinary + 100, row * nIn + i) % 1000u) < minorityPermille;
  return (majority != minority) ? 1.0f : 0.0f;
}

}  // namespace autocircuit::check
