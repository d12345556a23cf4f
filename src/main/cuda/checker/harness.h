// The checker's harness logic, GPU-free: the list of cases (GPT-2-small and Llama-3.2-1B shapes, every mask
// layout, every dtype, dense and binary masks), the error bound a kernel value must meet against the float64
// reference, which elements are compared, the traffic of each kernel, and the device's peak bandwidth from its
// memory clock and bus width. Plain C++: host_test.cpp tests it with g++, edge_patch_check.cu runs it on a GPU.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "check_data.h"
#include "reference.h"

namespace autocircuit::check {

inline const char* dtypeName(Dtype d) { return d == Dtype::F32 ? "fp32" : d == Dtype::BF16 ? "bf16" : "fp16"; }
inline int64_t elementSize(Dtype d) { return d == Dtype::F32 ? 4 : 2; }

// Relative precision of one rounding to dtype (one ulp: twice the round-to-nearest bound, for slack).
inline double unitRoundoff(Dtype d) {
  return d == Dtype::F32 ? std::ldexp(1.0, -23) : d == Dtype::BF16 ? std::ldexp(1.0, -7) : std::ldexp(1.0, -10);
}

// |got - ref| must be within unitRoundoff(stored dtype) * |ref| (the final rounding) plus kAccumulation *
// magnitude (fp32 accumulation of the terms, whose absolute sum is magnitude), plus a tiny absolute floor.
constexpr double kAccumulation = 1e-5;
inline double allowedError(Dtype stored, const RefValue& ref) {
  return unitRoundoff(stored) * std::fabs(ref.value) + kAccumulation * ref.magnitude + 1e-30;
}

// The worst element of one comparison, as a fraction of its allowed error (<= 1 passes); NaN fails.
struct Comparison {
  std::string what;
  int64_t compared = 0;
  double worstRatio = 0, worstGot = 0, worstRef = 0;
  int64_t worstIndex = -1;
  bool nan = false;
  void add(int64_t index, double got, const RefValue& ref, Dtype stored) {
    ++compared;
    if (std::isnan(got) || std::isnan(ref.value)) {
      if (!nan) {
        worstIndex = index;
        worstGot = got;
        worstRef = ref.value;
      }
      nan = true;
      return;
    }
    const double ratio = std::fabs(got - ref.value) / allowedError(stored, ref);
    if (worstIndex < 0 || (!nan && ratio > worstRatio)) {
      worstRatio = std::max(worstRatio, ratio);
      worstIndex = index;
      worstGot = got;
      worstRef = ref.value;
    }
  }
  bool ok() const { return !nan && compared > 0 && worstRatio <= 1.0; }
  std::string summary() const {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s: %lld compared, worst %.3g of the bound%s (got %.9g, ref %.9g at %lld)",
                  what.c_str(), (long long)compared, worstRatio, nan ? ", NaN" : "", worstGot, worstRef,
                  (long long)worstIndex);
    return buf;
  }
};

// The elements compared: all of them when there are at most `budget`, else `budget` spread by a hash (always
// including the first and the last), so that the float64 reference stays fast at Llama sizes.
inline std::vector<int64_t> sampleIndices(int64_t count, int64_t budget, uint64_t seed) {
  std::vector<int64_t> out;
  if (count <= 0) return out;
  if (count <= budget) {
    out.resize(count);
    for (int64_t k = 0; k < count; ++k) out[k] = k;
    return out;
  }
  out.push_back(0);
  out.push_back(count - 1);
  for (int64_t k = 2; k < budget; ++k) out.push_back(int64_t(splitmix64(seed * 7919 + uint64_t(k)) % uint64_t(count)));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// The (absolute row, token, d) of a flat index into the packed outputs (or incoming gradients): mask m's
// [T, H_m, D] block starts at T * rowOffset(m) * D. The inverse of Problem::packedIndex.
struct RowAt {
  int64_t r, t, d;
};
inline RowAt unpackRow(const Problem& p, int64_t k) {
  const int64_t T = p.tokens(), D = p.dModel;
  int64_t off = 0;
  size_t m = 0;
  while (m + 1 < p.heads.size() && k >= T * (off + p.heads[m]) * D) off += p.heads[m++];
  const int64_t local = k - T * off * D, H = p.heads[m];
  return {off + (local / D) % H, local / (H * D), local % D};
}

// One case of the checker.
struct Case {
  std::string model;   // "GPT-2 small", "Llama-3.2-1B", "small"
  Problem problem;
  bool timed = false;  // the K1-style timing shapes
};

// Q/K/V inputs of the last block (one launch for the three masks) and one MLP input, per model:
//   GPT-2 small: d_model 768, 12 layers, 12 heads: the last block's Q/K/V read 1 + 11 * 13 = 144 sources.
//   Llama-3.2-1B: d_model 2048, 16 layers, 32 query heads and 8 key/value heads (grouped-query attention): the last
//   block's Q/K/V read 1 + 15 * 33 = 496 sources, 32 + 8 + 8 = 48 rows.
struct ModelShape {
  const char* name;
  int64_t dModel, nInQkv, qHeads, kvHeads;
};
inline std::vector<ModelShape> modelShapes() {
  return {{"GPT-2 small", 768, 144, 12, 12}, {"Llama-3.2-1B", 2048, 496, 32, 8}};
}

// quick: correctness at small sizes only (seconds). Otherwise also the model shapes: every layout and dtype at a
// few tokens (checked on sampled elements), and the timed K1-style cases (batch 16, 256 tokens).
inline std::vector<Case> buildCases(bool quick) {
  std::vector<Case> cases;
  const Dtype dtypes[] = {Dtype::F32, Dtype::BF16, Dtype::F16};
  uint64_t seed = 11;
  // Small shapes, every layout x dtype x mask kind, fully compared; odd sizes exercise the edges of the tiles.
  for (int layout = 0; layout < 4; ++layout) {
    for (Dtype dt : dtypes) {
      for (int binary = 0; binary < 2; ++binary) {
        Case c;
        c.model = "small";
        Problem& p = c.problem;
        p.batch = 3;
        p.seq = 5;
        p.dModel = 37;
        p.nIn = 70;           // more than one shared-memory chunk of sources (64)
        p.heads = {3, 2, 2};  // three masks of different head counts in one launch
        p.maskBatch = layout & 1;
        p.maskSeq = layout & 2;
        p.dtype = dt;
        p.binary = binary;
        p.minorityPermille = 100;
        p.seed = seed++;
        cases.push_back(c);
      }
    }
  }
  {  // more rows than one pass holds (two passes over patch and curr)
    Case c;
    c.model = "small";
    c.problem.batch = 2;
    c.problem.seq = 3;
    c.problem.dModel = 130;
    c.problem.nIn = 9;
    c.problem.heads = {40, 40};
    c.problem.seed = seed++;
    cases.push_back(c);
  }
  if (quick) return cases;
  for (const ModelShape& m : modelShapes()) {
    // every layout, dtype and mask kind (dense; binary, which adds the sparse forward and the running sum) at the
    // model's width and source count, few tokens
    for (int layout = 0; layout < 4; ++layout) {
      for (Dtype dt : dtypes) {
        for (int binary = 0; binary < 2; ++binary) {
          Case c;
          c.model = m.name;
          Problem& p = c.problem;
          p.batch = 2;
          p.seq = 3;
          p.dModel = m.dModel;
          p.nIn = m.nInQkv;
          p.heads = {m.qHeads, m.kvHeads, m.kvHeads};
          p.maskBatch = layout & 1;
          p.maskSeq = layout & 2;
          p.dtype = dt;
          p.binary = binary;
          p.minorityPermille = 100;
          p.seed = seed++;
          cases.push_back(c);
        }
      }
    }
    // timed: batch 16 x 16 tokens (B*S = 256), Q/K/V in one launch, dense and binary masks, every dtype
    for (Dtype dt : dtypes) {
      for (int binary = 0; binary < 2; ++binary) {
        Case c;
        c.model = m.name;
        c.timed = true;
        Problem& p = c.problem;
        p.batch = 16;
        p.seq = 16;
        p.dModel = m.dModel;
        p.nIn = m.nInQkv;
        p.heads = {m.qHeads, m.kvHeads, m.kvHeads};
        p.dtype = dt;
        p.binary = binary;
        p.seed = seed++;
        cases.push_back(c);
      }
    }
  }
  return cases;
}

// Bytes a kernel must move at least (read every input once, write every output once).
inline double forwardBytes(const Problem& p) {
  const double e = double(elementSize(p.dtype)), td = double(p.tokens() * p.dModel);
  return e * (2.0 * p.nIn * td + td + double(p.rows()) * td) + 4.0 * double(p.groups() * p.rows() * p.nIn);
}
inline double backwardBytes(const Problem& p) {  // read gradOut, write grad_input and grad_curr
  const double e = double(elementSize(p.dtype)), td = double(p.tokens() * p.dModel);
  return e * (double(p.rows()) * td + td + double(p.nIn) * td);
}
inline double maskGradBytes(const Problem& p) {  // read patch, curr and gradOut
  const double e = double(elementSize(p.dtype)), td = double(p.tokens() * p.dModel);
  return e * (2.0 * p.nIn * td + double(p.rows()) * td);
}

// Peak DRAM bandwidth in GB/s from the memory clock (kHz, as cudaDevAttrMemoryClockRate reports it) and the bus
// width (bits): two transfers per clock (DDR/HBM), bus width / 8 bytes each.
inline double peakBandwidthGBs(int memoryClockKHz, int busWidthBits) {
  return 2.0 * double(memoryClockKHz) * 1e3 * (double(busWidthBits) / 8.0) / 1e9;
}

inline double gbPerSecond(double bytes, double ms) { return ms > 0 ? bytes / (ms * 1e-3) / 1e9 : 0.0; }

// Exit codes of edge_patch_check (documented in docs/native.md).
constexpr int kExitOk = 0;
constexpr int kExitMismatch = 1;
constexpr int kExitError = 2;
constexpr int kExitNoDevice = 3;

}  // namespace autocircuit::check
