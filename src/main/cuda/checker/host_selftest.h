// Self-tests of the checker's GPU-free parts: the 16-bit rounding, the float64 reference (against properties
// it must have and against finite differences), the sparse plan and the GPU cost model, the running sum, the
// error bound and comparison, the case list and the peak-bandwidth formula. Run by host_test.cpp (g++, from the
// JUnit test CudaCheckerHostTest) and by `edge_patch_check --host-only` (the nvcc-built checker, no GPU needed).
#pragma once

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "autocircuit/sparse_plan.h"
#include "check_data.h"
#include "harness.h"
#include "reference.h"

namespace autocircuit::check {

struct SelfTest {
  int failures = 0, checks = 0;
  void expect(bool ok, const std::string& what) {
    ++checks;
    if (!ok) {
      ++failures;
      std::printf("  FAILED: %s\n", what.c_str());
    }
  }
  void near(double got, double want, double tol, const std::string& what) {
    expect(std::fabs(got - want) <= tol, what + ": got " + std::to_string(got) + ", want " + std::to_string(want));
  }
};

inline void testRounding(SelfTest& t) {
  // bfloat16: 8 significant bits, ties to even
  t.near(roundTo(Dtype::BF16, 1.0f), 1.0, 0, "bf16(1)");
  t.near(roundTo(Dtype::BF16, 1.0f + 1.0f / 256), 1.0, 0, "bf16 tie 1+2^-8 -> 1 (even)");
  t.near(roundTo(Dtype::BF16, 1.0f + 3.0f / 256), 1.0 + 4.0 / 256, 0, "bf16 tie 1+3*2^-8 -> 1+2^-6 (even)");
  t.near(roundTo(Dtype::BF16, 1.0f + 1.5f / 256), 1.0 + 1.0 / 128, 0, "bf16 above the tie rounds up");
  t.near(roundTo(Dtype::BF16, -2.5f), -2.5, 0, "bf16(-2.5) exact");
  // float16: 11 significant bits, subnormals below 2^-14, overflow at 65520
  t.near(roundTo(Dtype::F16, 1.0f + 1.0f / 2048), 1.0, 0, "f16 tie 1+2^-11 -> 1");
  t.near(roundTo(Dtype::F16, 1.0f + 3.0f / 2048), 1.0 + 4.0 / 2048, 0, "f16 tie 1+3*2^-11 -> 1+2^-9");
  t.near(roundTo(Dtype::F16, 65504.0f), 65504.0, 0, "f16 max");
  t.expect(std::isinf(roundTo(Dtype::F16, 65520.0f)), "f16(65520) overflows to inf");
  t.near(roundTo(Dtype::F16, 65519.0f), 65504.0, 0, "f16(65519) -> 65504");
  t.near(roundTo(Dtype::F16, std::ldexp(1.0f, -24)), std::ldexp(1.0, -24), 0, "f16 smallest subnormal");
  t.near(roundTo(Dtype::F16, std::ldexp(1.0f, -25)), 0.0, 0, "f16 half the smallest subnormal ties to 0");
  t.near(roundTo(Dtype::F16, std::ldexp(1.5f, -25)), std::ldexp(1.0, -24), 0, "f16 above the tie -> 2^-24");
  t.near(roundTo(Dtype::F16, std::ldexp(3.0f, -24)), std::ldexp(3.0, -24), 0, "f16 subnormal 3*2^-24 exact");
  t.near(roundTo(Dtype::F16, -std::ldexp(1.0f, -14)), -std::ldexp(1.0, -14), 0, "f16 smallest normal");
#if defined(__FLT16_MAX__) && !defined(__CUDACC__)
  // Against the compiler's own float16 conversion over many values (g++ on x86-64 has _Float16).
  int mismatches = 0;
  for (uint64_t k = 0; k < 200000; ++k) {
    const float x = std::ldexp(signedUniform(3, 9, k), int(k % 40) - 30);
    const float mine = roundTo(Dtype::F16, x);
    const float theirs = float(static_cast<_Float16>(x));
    if (!(mine == theirs)) ++mismatches;
  }
  t.expect(mismatches == 0, "f16 rounding equals _Float16 on 200000 values (" + std::to_string(mismatches) + " differ)");
#endif
  // the generated data is in [-1, 1) and representable in the dtype
  bool inRange = true, representable = true;
  for (uint64_t k = 0; k < 10000; ++k) {
    const float v = activation(Dtype::BF16, 5, kPatch, k);
    inRange &= v >= -1.0f && v <= 1.0f;
    representable &= roundTo(Dtype::BF16, v) == v;
  }
  t.expect(inRange && representable, "bf16 activations in [-1, 1] and exactly representable");
}

inline Problem smallProblem(bool mb, bool ms, Dtype dt, bool binary) {
  Problem p;
  p.batch = 2;
  p.seq = 3;
  p.dModel = 4;
  p.nIn = 5;
  p.heads = {2, 1};
  p.maskBatch = mb;
  p.maskSeq = ms;
  p.dtype = dt;
  p.binary = binary;
  p.minorityPermille = 300;
  p.seed = 42 + (mb ? 1 : 0) + (ms ? 2 : 0);
  return p;
}

inline void testReference(SelfTest& t) {
  for (int layout = 0; layout < 4; ++layout) {
    const Problem p = smallProblem(layout & 1, layout & 2, Dtype::F32, false);
    const std::string tag = " (layout " + std::to_string(layout) + ")";
    // groups: each token's group index follows the layout
    t.expect(p.group(p.tokens() - 1) == p.groups() - 1, "last token in the last group" + tag);
    // forward written out independently, as the einsum of the spec
    double worst = 0;
    for (int64_t r = 0; r < p.rows(); ++r)
      for (int64_t tk = 0; tk < p.tokens(); ++tk)
        for (int64_t d = 0; d < p.dModel; ++d) {
          const int64_t b = tk / p.seq, s = tk % p.seq;
          const int64_t g = (layout & 1 ? b : 0) * (layout & 2 ? p.seq : 1) + (layout & 2 ? s : 0);
          double want = p.input(tk, d);
          for (int64_t i = 0; i < p.nIn; ++i) want += double(p.w(g, r, i)) * (p.patch(i, tk, d) - p.curr(i, tk, d));
          worst = std::max(worst, std::fabs(refForward(p, r, tk, d).value - want));
        }
    t.near(worst, 0, 1e-12, "refForward equals the written-out sum" + tag);

    // gradients against central finite differences of L = sum_r,t,d gradOut * out (linear: exact up to rounding)
    const double h = 0.5;
    auto loss = [&](double dInput, int64_t ti, int64_t di, double dCurr, int64_t ci, double dW, int64_t gw, int64_t rw,
                    int64_t iw) {
      double L = 0;
      for (int64_t r = 0; r < p.rows(); ++r)
        for (int64_t tk = 0; tk < p.tokens(); ++tk)
          for (int64_t d = 0; d < p.dModel; ++d) {
            const int64_t g = p.group(tk);
            double out = p.input(tk, d) + (tk == ti && d == di ? dInput : 0);
            for (int64_t i = 0; i < p.nIn; ++i) {
              const double w = p.w(g, r, i) + (g == gw && r == rw && i == iw ? dW : 0);
              const double c = p.curr(i, tk, d) + (i == ci && tk == ti && d == di ? dCurr : 0);
              out += w * (p.patch(i, tk, d) - c);
            }
            L += p.gradOut(r, tk, d) * out;
          }
      return L;
    };
    const int64_t ti = p.tokens() - 2, di = 1, ci = 3, gw = p.groups() - 1, rw = 1, iw = 2;
    const double fdInput = (loss(h, ti, di, 0, -1, 0, -1, -1, -1) - loss(-h, ti, di, 0, -1, 0, -1, -1, -1)) / (2 * h);
    const double fdCurr = (loss(0, ti, di, h, ci, 0, -1, -1, -1) - loss(0, ti, di, -h, ci, 0, -1, -1, -1)) / (2 * h);
    const double fdW = (loss(0, -1, -1, 0, -1, h, gw, rw, iw) - loss(0, -1, -1, 0, -1, -h, gw, rw, iw)) / (2 * h);
    t.near(refGradInput(p, ti, di).value, fdInput, 1e-9, "grad_input = finite difference" + tag);
    t.near(refGradCurr(p, ci, ti, di).value, fdCurr, 1e-9, "grad_curr = finite difference" + tag);
    t.near(refGradW(p, gw, rw, iw).value, fdW, 1e-9, "grad_w = finite difference" + tag);
  }
  // the packed output layout: unpackRow inverts packedIndex, and the indices cover [0, R * T * D) once
  {
    const Problem q = smallProblem(true, false, Dtype::F32, false);
    std::vector<int> seen(q.rows() * q.tokens() * q.dModel, 0);
    bool inverse = true;
    for (int64_t r = 0; r < q.rows(); ++r)
      for (int64_t tk = 0; tk < q.tokens(); ++tk)
        for (int64_t d = 0; d < q.dModel; ++d) {
          const int64_t k = int64_t(q.packedIndex(r, tk, d));
          if (k < 0 || k >= int64_t(seen.size())) { inverse = false; continue; }
          ++seen[k];
          const RowAt at = unpackRow(q, k);
          inverse &= at.r == r && at.t == tk && at.d == d;
        }
    bool once = true;
    for (int v : seen) once &= v == 1;
    t.expect(inverse && once, "unpackRow inverts packedIndex over the whole packed buffer");
  }
  // magnitudes: the sum of |terms| bounds |value - input|
  const Problem p = smallProblem(false, false, Dtype::BF16, false);
  const RefValue v = refForward(p, 1, 2, 3);
  t.expect(v.magnitude >= std::fabs(v.value - p.input(2, 3)) - 1e-12, "magnitude bounds the sum");
}

inline void testSparse(SelfTest& t) {
  for (int layout = 0; layout < 4; ++layout) {
    const Problem p = smallProblem(layout & 1, layout & 2, Dtype::F32, true);
    const std::string tag = " (layout " + std::to_string(layout) + ")";
    std::vector<float> w(p.groups() * p.rows() * p.nIn);
    for (int64_t g = 0; g < p.groups(); ++g)
      for (int64_t r = 0; r < p.rows(); ++r)
        for (int64_t i = 0; i < p.nIn; ++i) w[(g * p.rows() + r) * p.nIn + i] = p.w(g, r, i);
    kernels::cuda::SparsePlanHost plan;
    t.expect(kernels::cuda::planBinaryMasks(w.data(), p.groups(), p.rows(), p.nIn, plan), "binary masks plan" + tag);
    double worst = 0, worstRunning = 0;
    bool sawMajorityOne = false;
    for (int64_t r = 0; r < p.rows(); ++r)
      for (int64_t tk = 0; tk < p.tokens(); ++tk)
        for (int64_t d = 0; d < p.dModel; ++d) {
          const double dense = refForward(p, r, tk, d).value;
          worst = std::max(worst, std::fabs(refSparseForward(p, plan, r, tk, d, nullptr) - dense));
          const double total = refRunningSum(p, p.nIn, tk, d).value;
          worstRunning = std::max(worstRunning, std::fabs(refSparseForward(p, plan, r, tk, d, &total) - dense));
          sawMajorityOne |= plan.majority[p.group(tk) * p.rows() + r] != 0;
        }
    t.near(worst, 0, 1e-12, "sparse form equals dense" + tag);
    t.near(worstRunning, 0, 1e-12, "sparse form with the running sum equals dense" + tag);
    t.expect(sawMajorityOne, "test data has majority-1 rows" + tag);
    // minority lists hold exactly the entries that differ from the majority
    bool listsRight = true;
    for (int64_t row = 0; row < p.groups() * p.rows(); ++row) {
      int64_t differing = 0;
      for (int64_t i = 0; i < p.nIn; ++i) differing += (w[row * p.nIn + i] != 0.f) != (plan.majority[row] != 0);
      listsRight &= differing == plan.rowStart[row + 1] - plan.rowStart[row];
    }
    t.expect(listsRight, "minority lists are the entries that differ from the majority" + tag);
  }
  // non-binary values refuse the plan
  std::vector<float> w = {0.f, 1.f, 0.5f, 1.f};
  kernels::cuda::SparsePlanHost plan;
  t.expect(!kernels::cuda::planBinaryMasks(w.data(), 1, 1, 4, plan), "0.5 is not binary");
  w = {0.f, 1.f, std::nanf(""), 1.f};
  t.expect(!kernels::cuda::planBinaryMasks(w.data(), 1, 1, 4, plan), "NaN is not binary");

  // GPU cost model: 36 rows, nIn 144. A few edges off an all-0 mask: sparse (reads only those sources).
  const int64_t R = 36, nIn = 144;
  std::vector<float> few(R * nIn, 0.f);
  for (int64_t r = 0; r < R; ++r) few[r * nIn + (r % 4)] = 1.f;
  t.expect(kernels::cuda::planBinaryMasks(few.data(), 1, R, nIn, plan), "plan few");
  t.expect(kernels::cuda::sparsePaysOnGpu(plan, -1), "few edges set: sparse pays");
  // A mask of mostly 1 (resample ablation of most edges) pays only with a running sum that is mostly up to date.
  std::vector<float> most(R * nIn, 1.f);
  for (int64_t r = 0; r < R; ++r) most[r * nIn + (r % 7)] = 0.f;
  t.expect(kernels::cuda::planBinaryMasks(most.data(), 1, R, nIn, plan), "plan most");
  t.expect(!kernels::cuda::sparsePaysOnGpu(plan, -1), "mostly 1 without a running sum: dense");
  t.expect(kernels::cuda::sparsePaysOnGpu(plan, nIn - 13), "mostly 1 with an up-to-date running sum: sparse");
  t.expect(!kernels::cuda::sparsePaysOnGpu(plan, 0), "mostly 1 with an empty running sum: dense");
  // Half the edges set in every row, spread: every source is needed, dense
  std::vector<float> half(R * nIn, 0.f);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < nIn; ++i) half[r * nIn + i] = (i + r) % 2 == 0 ? 1.f : 0.f;
  t.expect(kernels::cuda::planBinaryMasks(half.data(), 1, R, nIn, plan), "plan half");
  t.expect(!kernels::cuda::sparsePaysOnGpu(plan, -1), "half the edges: dense");
}

inline void testRunningSum(SelfTest& t) {
  const Problem p = smallProblem(false, false, Dtype::F16, false);
  // growing prefixes: the sum after [0, a) plus [a, b) is the sum after [0, b)
  double worst = 0;
  for (int64_t a = 0; a <= p.nIn; ++a)
    for (int64_t b = a; b <= p.nIn; ++b) {
      double add = 0;
      for (int64_t i = a; i < b; ++i) add += p.delta(i, 1, 2);
      worst = std::max(worst, std::fabs(refRunningSum(p, a, 1, 2).value + add - refRunningSum(p, b, 1, 2).value));
    }
  t.near(worst, 0, 1e-12, "running sum composes over prefixes");
}

inline void testComparison(SelfTest& t) {
  RefValue ref{1.0, 2.0};
  Comparison ok;
  ok.what = "ok";
  ok.add(0, 1.0 + 0.9 * allowedError(Dtype::F32, ref), ref, Dtype::F32);
  t.expect(ok.ok(), "error at 0.9 of the bound passes");
  Comparison bad;
  bad.what = "bad";
  bad.add(0, 1.0, ref, Dtype::F32);
  bad.add(7, 1.0 + 1.5 * allowedError(Dtype::F32, ref), ref, Dtype::F32);
  t.expect(!bad.ok() && bad.worstIndex == 7, "error at 1.5 of the bound fails, at its index");
  Comparison nan;
  nan.what = "nan";
  nan.add(3, std::nan(""), ref, Dtype::F32);
  nan.add(4, 1.0, ref, Dtype::F32);
  t.expect(!nan.ok() && nan.nan, "NaN fails");
  Comparison empty;
  t.expect(!empty.ok(), "nothing compared fails");
  // bf16 tolerates one rounding, fp32 does not
  RefValue exact{1.0, 0.0};
  Comparison b16;
  b16.add(0, roundTo(Dtype::BF16, 1.0f + 1.0f / 200), RefValue{1.0 + 1.0 / 200, 0.0}, Dtype::BF16);
  t.expect(b16.ok(), "bf16 rounding of the result is within the bound");
  Comparison f32;
  f32.add(0, 1.0 + 1e-4, exact, Dtype::F32);
  t.expect(!f32.ok(), "1e-4 off in fp32 without accumulation fails");
  // sampling
  const auto all = sampleIndices(10, 100, 1);
  t.expect(all.size() == 10 && all.front() == 0 && all.back() == 9, "small counts are compared in full");
  const auto some = sampleIndices(1000000, 500, 1);
  t.expect(some.size() > 400 && some.size() <= 500 && some.front() == 0 && some.back() == 999999,
           "large counts are sampled, ends included");
}

inline void testCasesAndBandwidth(SelfTest& t) {
  const auto quick = buildCases(true), full = buildCases(false);
  t.expect(!quick.empty() && full.size() > quick.size(), "quick is a subset of the full case list");
  bool layouts[4] = {}, dtypes[3] = {}, binary = false, gpt2 = false, llama = false, timedBoth = true;
  int timedGpt2 = 0, timedLlama = 0;
  // at each model's shape, untimed: every (layout, dtype, dense/binary) combination
  bool modelCombos[2][4][3][2] = {};
  for (const Case& c : full) {
    const Problem& p = c.problem;
    const int model = c.model == "GPT-2 small" ? 0 : c.model == "Llama-3.2-1B" ? 1 : -1;
    if (model >= 0 && !c.timed) {
      modelCombos[model][int(p.maskBatch) + 2 * int(p.maskSeq)][int(p.dtype)][int(p.binary)] = true;
    }
    layouts[int(p.maskBatch) + 2 * int(p.maskSeq)] = true;
    dtypes[int(p.dtype)] = true;
    binary |= p.binary;
    if (c.model == "GPT-2 small") {
      gpt2 = true;
      t.expect(p.dModel == 768 && p.nIn == 144 && p.rows() == 36, "GPT-2 small Q/K/V shape");
      timedGpt2 += c.timed;
    }
    if (c.model == "Llama-3.2-1B") {
      llama = true;
      t.expect(p.dModel == 2048 && p.nIn == 496 && p.rows() == 48 && p.heads.size() == 3, "Llama Q/K/V shape");
      timedLlama += c.timed;
    }
  }
  timedBoth = timedGpt2 == 6 && timedLlama == 6;
  bool allCombos = true;
  for (auto& m : modelCombos)
    for (auto& l : m)
      for (auto& d : l)
        for (bool b : d) allCombos &= b;
  t.expect(allCombos, "every layout x dtype x mask kind at GPT-2-small and Llama-3.2-1B shapes");
  t.expect(layouts[0] && layouts[1] && layouts[2] && layouts[3], "every mask layout");
  t.expect(dtypes[0] && dtypes[1] && dtypes[2], "every dtype");
  t.expect(binary && gpt2 && llama && timedBoth, "binary masks, both models, timed cases for each dtype and mask kind");
  // H100 SXM: HBM3 at 2619 MHz on a 5120-bit bus: 3352 GB/s; A100 40GB: 1215 MHz, 5120 bits: 1555 GB/s
  t.near(peakBandwidthGBs(2619000, 5120), 3352.32, 0.01, "H100 peak bandwidth");
  t.near(peakBandwidthGBs(1215000, 5120), 1555.2, 0.01, "A100 peak bandwidth");
  t.near(gbPerSecond(2e9, 1.0), 2000.0, 1e-9, "2 GB in 1 ms is 2000 GB/s");
  // forward traffic of GPT-2 small's K1 case in fp32: 2 * 144 + 1 + 36 rows of 256 x 768 floats, plus the masks
  Problem p;
  p.batch = 16;
  p.seq = 16;
  p.dModel = 768;
  p.nIn = 144;
  p.heads = {12, 12, 12};
  t.near(forwardBytes(p), 4.0 * (2 * 144 + 1 + 36) * 256 * 768 + 4.0 * 36 * 144, 0.5, "K1 forward bytes");
}

// Runs every self-test; prints one line per group and returns the number of failures.
inline int runHostSelfTest() {
  SelfTest t;
  struct Group {
    const char* name;
    void (*fn)(SelfTest&);
  } groups[] = {{"16-bit rounding", testRounding}, {"float64 reference and gradients", testReference},
                {"sparse plan and GPU cost model", testSparse}, {"running sum", testRunningSum},
                {"error bound and comparison", testComparison}, {"cases and bandwidth", testCasesAndBandwidth}};
  for (const Group& g : groups) {
    const int before = t.failures;
    g.fn(t);
    std::printf("host self-test: %-34s %s\n", g.name, t.failures == before ? "OK" : "FAILED");
  }
  std::printf("host self-test: %d checks, %d failed\n", t.checks, t.failures);
  return t.failures;
}

}  // namespace autocircuit::check
