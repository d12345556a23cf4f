// Host-side planning of the sparse binary-mask form for the CUDA kernels (edge_patch_forward_sparse), and the
// GPU cost model that decides between it and the dense kernel. Plain C++ (no CUDA, no ATen): the ATen glue,
// the standalone checker and its host tests (compiled by g++ without a GPU) all use it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace autocircuit::kernels::cuda {

struct SparsePlanHost {
  int64_t groups = 0, rows = 0, nIn = 0;
  std::vector<uint8_t> majority;   // [G * R]
  std::vector<int64_t> rowStart;   // [G * R + 1]
  std::vector<int32_t> minority;   // source indices
  std::vector<uint8_t> sumAll;     // [G]
  std::vector<int64_t> neededPerGroup;  // [G] distinct minority sources of the group (union over its rows)
  bool anySumAll() const { return std::any_of(sumAll.begin(), sumAll.end(), [](uint8_t v) { return v != 0; }); }
};

// Builds the sparse form of w [G, R, nIn] (fp32, host) when every value is exactly 0 or 1; false otherwise
// (NaN included), leaving plan unspecified. A row's majority is 1 when more than half its values are 1.
inline bool planBinaryMasks(const float* w, int64_t G, int64_t R, int64_t nIn, SparsePlanHost& plan) {
  plan.groups = G;
  plan.rows = R;
  plan.nIn = nIn;
  plan.majority.assign(G * R, 0);
  plan.rowStart.assign(G * R + 1, 0);
  plan.minority.clear();
  plan.sumAll.assign(G, 0);
  plan.neededPerGroup.assign(G, 0);
  std::vector<uint8_t> used(nIn);
  for (int64_t g = 0; g < G; ++g) {
    std::fill(used.begin(), used.end(), 0);
    for (int64_t r = 0; r < R; ++r) {
      const float* row = w + (g * R + r) * nIn;
      int64_t ones = 0;
      for (int64_t i = 0; i < nIn; ++i) {
        if (row[i] == 1.f) {
          ++ones;
        } else if (row[i] != 0.f) {
          return false;
        }
      }
      const bool maj = 2 * ones > nIn;
      plan.majority[g * R + r] = maj;
      if (maj) plan.sumAll[g] = 1;
      const float minorityValue = maj ? 0.f : 1.f;
      for (int64_t i = 0; i < nIn; ++i) {
        if (row[i] == minorityValue) {
          plan.minority.push_back(int32_t(i));
          used[i] = 1;
        }
      }
      plan.rowStart[g * R + r + 1] = int64_t(plan.minority.size());
    }
    plan.neededPerGroup[g] = std::count(used.begin(), used.end(), uint8_t(1));
  }
  return true;
}

// The GPU cost model, in bytes moved from memory per (token, d) and element size, summed over the groups (the
// kernels are bandwidth bound; arithmetic is free beside it):
//   dense:  2 nIn (patch and curr, each read once) + R writes;
//   sparse: 2 x (the group's distinct minority sources) (repeated minorities of other rows hit the cache)
//           + for groups with a majority-1 row: 2 nIn to form sum_i delta[i], or, with a running sum that already
//             holds `runningRows` of the nIn sources, 2 (nIn - runningRows) to bring it up to date plus 2 (one
//             fp32 read of it, two elements' worth of 16-bit data; counted the same for fp32 for simplicity)
//           + R writes.
// runningRows < 0: no running sum. The sparse form is taken when it moves fewer bytes.
inline bool sparsePaysOnGpu(const SparsePlanHost& plan, int64_t runningRows) {
  const int64_t G = plan.groups, nIn = plan.nIn;
  const int64_t dense = G * 2 * nIn;
  const bool running = runningRows >= 0 && runningRows <= nIn;
  int64_t sparse = 0;
  bool advanced = false;
  for (int64_t g = 0; g < G; ++g) {
    sparse += 2 * plan.neededPerGroup[g];
    if (plan.sumAll[g]) {
      if (running) {
        sparse += 2;
        if (!advanced) {
          // the running sum is brought up to date once per call (for all groups: it is per token)
          sparse += 2 * (nIn - runningRows) * G;
          advanced = true;
        }
      } else {
        sparse += 2 * nIn;
      }
    }
  }
  return sparse < dense;
}

}  // namespace autocircuit::kernels::cuda
