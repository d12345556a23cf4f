// The checker's float64 host reference of edge_patch: forward, the input, curr and mask gradients, the sparse
// binary-mask form and the running sum, each computed element by element from the hashed test data (check_data.h)
// with the magnitude of the summed terms (for the accumulation error bound, harness.h). Plain C++ (host only).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "check_data.h"

namespace autocircuit::check {

// One edge_patch call: sizes, mask layout, dtype and how the masks are made.
struct Problem {
  int64_t batch = 1, seq = 1, dModel = 1, nIn = 1;
  std::vector<int64_t> heads;  // per mask (1 without a head dimension)
  bool maskBatch = false, maskSeq = false;
  Dtype dtype = Dtype::F32;
  bool binary = false;               // 0/1 masks (the sparse path) instead of dense values in [0, 1)
  uint32_t minorityPermille = 50;    // binary masks: share of entries that differ from the row's majority
  uint64_t seed = 1;

  int64_t tokens() const { return batch * seq; }
  int64_t rows() const {
    int64_t r = 0;
    for (int64_t h : heads) r += h;
    return r;
  }
  int64_t groups() const { return (maskBatch ? batch : 1) * (maskSeq ? seq : 1); }
  int64_t group(int64_t t) const {
    const int64_t b = t / seq, s = t % seq;
    return (maskBatch ? b * (maskSeq ? seq : 1) : 0) + (maskSeq ? s : 0);
  }
  int64_t rowOffset(size_t m) const {
    int64_t r = 0;
    for (size_t k = 0; k < m; ++k) r += heads[k];
    return r;
  }
  // The mask of row r, group g, source i (as the kernels see it: fp32 w[g, r, i]).
  float w(int64_t g, int64_t r, int64_t i) const {
    const uint64_t row = uint64_t(g * rows() + r);
    return binary ? binaryMask(seed, row, uint64_t(i), uint64_t(nIn), minorityPermille)
                  : denseMask(seed, row * uint64_t(nIn) + uint64_t(i));
  }
  double input(int64_t t, int64_t d) const { return activation(dtype, seed, kInput, uint64_t(t * dModel + d)); }
  double patch(int64_t i, int64_t t, int64_t d) const {
    return activation(dtype, seed, kPatch, uint64_t((i * tokens() + t) * dModel + d));
  }
  double curr(int64_t i, int64_t t, int64_t d) const {
    return activation(dtype, seed, kCurr, uint64_t((i * tokens() + t) * dModel + d));
  }
  double delta(int64_t i, int64_t t, int64_t d) const { return patch(i, t, d) - curr(i, t, d); }
  // Incoming gradient of output row r (absolute) at (t, d); the packed gradient buffer holds mask m's
  // [T, H_m, D] at offset T * rowOffset(m) * D, so its flat index is T * rowOffset * D + (t * H_m + h) * D + d.
  double gradOut(int64_t r, int64_t t, int64_t d) const { return activation(dtype, seed, kGradOut, packedIndex(r, t, d)); }
  uint64_t packedIndex(int64_t r, int64_t t, int64_t d) const {
    size_t m = 0;
    int64_t off = 0;
    while (m + 1 < heads.size() && r >= off + heads[m]) off += heads[m++];
    const int64_t h = r - off;
    return uint64_t(tokens() * off * dModel + (t * heads[m] + h) * dModel + d);
  }
  std::string describe() const;
};

// A reference value and the sum of the magnitudes of the terms it adds (for the fp32 accumulation bound).
struct RefValue {
  double value = 0, magnitude = 0;
};

// out[r][t][d] = input[t][d] + sum_i w[g(t), r, i] * delta[i][t][d]
inline RefValue refForward(const Problem& p, int64_t r, int64_t t, int64_t d) {
  const int64_t g = p.group(t);
  RefValue v{p.input(t, d), std::fabs(p.input(t, d))};
  for (int64_t i = 0; i < p.nIn; ++i) {
    const double term = double(p.w(g, r, i)) * p.delta(i, t, d);
    v.value += term;
    v.magnitude += std::fabs(term);
  }
  return v;
}

// grad_input[t][d] = sum_r gradOut[r][t][d]
inline RefValue refGradInput(const Problem& p, int64_t t, int64_t d) {
  RefValue v;
  for (int64_t r = 0; r < p.rows(); ++r) {
    v.value += p.gradOut(r, t, d);
    v.magnitude += std::fabs(p.gradOut(r, t, d));
  }
  return v;
}

// grad_curr[i][t][d] = -sum_r w[g(t), r, i] * gradOut[r][t][d]
inline RefValue refGradCurr(const Problem& p, int64_t i, int64_t t, int64_t d) {
  const int64_t g = p.group(t);
  RefValue v;
  for (int64_t r = 0; r < p.rows(); ++r) {
    const double term = double(p.w(g, r, i)) * p.gradOut(r, t, d);
    v.value -= term;
    v.magnitude += std::fabs(term);
  }
  return v;
}

// grad_w[g][r][i] = sum over the tokens t of group g and every d of gradOut[r][t][d] * delta[i][t][d]
inline RefValue refGradW(const Problem& p, int64_t g, int64_t r, int64_t i) {
  RefValue v;
  for (int64_t t = 0; t < p.tokens(); ++t) {
    if (p.group(t) != g) continue;
    for (int64_t d = 0; d < p.dModel; ++d) {
      const double term = p.gradOut(r, t, d) * p.delta(i, t, d);
      v.value += term;
      v.magnitude += std::fabs(term);
    }
  }
  return v;
}

// The running sum after sources [0, upTo): sum_{i < upTo} delta[i][t][d].
inline RefValue refRunningSum(const Problem& p, int64_t upTo, int64_t t, int64_t d) {
  RefValue v;
  for (int64_t i = 0; i < upTo; ++i) {
    v.value += p.delta(i, t, d);
    v.magnitude += std::fabs(p.delta(i, t, d));
  }
  return v;
}

// The sparse form's arithmetic (what forward_sparse_kernel computes) in float64 from a plan's majority and
// minority lists: input + (maj ? total : 0) + (maj ? -1 : +1) * sum over the minority. Equal to refForward for
// binary masks; the host tests hold it to that, so that the plan is checked independently of a GPU.
template <typename Plan>
inline double refSparseForward(const Problem& p, const Plan& plan, int64_t r, int64_t t, int64_t d,
                               const double* total) {
  const int64_t g = p.group(t);
  const int64_t row = g * p.rows() + r;
  const bool maj = plan.majority[row] != 0;
  double acc = 0;
  if (maj) {
    if (total != nullptr) {
      acc = *total;
    } else {
      for (int64_t i = 0; i < p.nIn; ++i) acc += p.delta(i, t, d);
    }
  }
  for (int64_t k = plan.rowStart[row]; k < plan.rowStart[row + 1]; ++k) {
    acc += (maj ? -1.0 : 1.0) * p.delta(plan.minority[k], t, d);
  }
  return p.input(t, d) + acc;
}

inline std::string Problem::describe() const {
  std::string h;
  for (size_t m = 0; m < heads.size(); ++m) h += (m ? "+" : "") + std::to_string(heads[m]);
  const char* dt = dtype == Dtype::F32 ? "fp32" : dtype == Dtype::BF16 ? "bf16" : "fp16";
  return std::string(dt) + " B=" + std::to_string(batch) + " S=" + std::to_string(seq) + " D=" +
         std::to_string(dModel) + " nIn=" + std::to_string(nIn) + " rows=" + h + " layout=" +
         (maskBatch ? "b" : "-") + (maskSeq ? "s" : "-") + (binary ? " binary" : " dense");
}

}  // namespace autocircuit::check
