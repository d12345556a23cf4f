// unembed_logsumexp: the log-sum-exp over the vocabulary of h . W + bias without materialising the logits (ACDC's KL
// divergence against the clean run needs nothing else of the full vocabulary; see kernels.h). CPU driver: the panels
// are cut into fixed chunks, at::parallel_for runs the chunks, and the chunks' partial results are merged in chunk
// order, so the value does not depend on the number of threads.
#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "autocircuit/cpu_kernels.h"
#include "autocircuit/kernels.h"

namespace autocircuit::kernels {

namespace {
// Panels per chunk: 32 x 16 columns x dModel 64 floats = 128 KiB of weights, read from L2 by every row block.
constexpr int64_t kPanelsPerChunk = 32;
}  // namespace

at::Tensor unembed_logsumexp(const at::Tensor& h, const at::Tensor& w_packed, const at::Tensor& bias,
                             const at::Tensor& weights) {
  TORCH_CHECK(h.defined() && w_packed.defined() && bias.defined(),
              "unembed_logsumexp: h, w_packed and bias must be defined tensors");
  TORCH_CHECK(h.device().is_cpu() && w_packed.device().is_cpu() && bias.device().is_cpu(),
              "unembed_logsumexp: CPU tensors only, got h on ", h.device(), ", w_packed on ", w_packed.device(),
              ", bias on ", bias.device());
  TORCH_CHECK(h.scalar_type() == at::kFloat && w_packed.scalar_type() == at::kFloat && bias.scalar_type() == at::kFloat,
              "unembed_logsumexp: float32 tensors only, got h ", h.scalar_type(), ", w_packed ", w_packed.scalar_type(),
              ", bias ", bias.scalar_type());
  TORCH_CHECK(h.dim() == 2, "unembed_logsumexp: h must be [rows, dModel], got shape ", h.sizes());
  TORCH_CHECK(w_packed.dim() == 3 && w_packed.size(2) == cpu::kLsePanel && w_packed.size(1) == h.size(1),
              "unembed_logsumexp: w_packed must be [panels, ", h.size(1), ", ", cpu::kLsePanel, "], got shape ",
              w_packed.sizes());
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == w_packed.size(0) * cpu::kLsePanel,
              "unembed_logsumexp: bias must be [", w_packed.size(0) * cpu::kLsePanel, "] (padded with ", cpu::kLsePad, "), got shape ",
              bias.sizes());
  TORCH_CHECK(h.is_contiguous() && w_packed.is_contiguous() && bias.is_contiguous(),
              "unembed_logsumexp: h, w_packed and bias must be contiguous");
  if (weights.defined()) {
    TORCH_CHECK(weights.device().is_cpu() && weights.scalar_type() == at::kFloat && weights.is_contiguous() &&
                    weights.dim() == 2 && weights.size(0) > 0 && h.size(0) % weights.size(0) == 0 &&
                    weights.size(1) == bias.size(0),
                "unembed_logsumexp: weights must be a contiguous CPU float32 [W, ", bias.size(0), "] with W dividing the ",
                h.size(0), " rows of h, got ", weights.scalar_type(), " ", weights.sizes());
  }

  const int64_t rows = h.size(0);
  const int64_t panels = w_packed.size(0);
  const int64_t chunks = (panels + kPanelsPerChunk - 1) / kPanelsPerChunk;
  at::Tensor out = at::zeros({rows, 2}, h.options().dtype(at::kDouble));
  if (rows == 0) return out;
  at::Tensor maxes = at::empty({chunks, rows}, h.options());
  at::Tensor sums = at::empty({chunks, rows}, h.options().dtype(at::kDouble));
  at::Tensor dots = at::empty({chunks, rows}, h.options().dtype(at::kDouble));
  float* maxPtr = maxes.data_ptr<float>();
  double* sumPtr = sums.data_ptr<double>();
  double* dotPtr = dots.data_ptr<double>();

  cpu::LseArgs args;
  args.rows = rows;
  args.dModel = h.size(1);
  args.h = h.data_ptr<float>();
  args.wPacked = w_packed.data_ptr<float>();
  args.bias = bias.data_ptr<float>();
  args.weights = weights.defined() ? weights.data_ptr<float>() : nullptr;
  args.weightRows = weights.defined() ? weights.size(0) : 0;
  args.padded = bias.size(0);
  const cpu::KernelTable& table = cpu::kernelTable();
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      table.logSumExpPanels(args, c * kPanelsPerChunk, std::min(panels, (c + 1) * kPanelsPerChunk),
                            maxPtr + c * rows, sumPtr + c * rows, dotPtr + c * rows);
    }
  });

  double* o = out.data_ptr<double>();
  for (int64_t r = 0; r < rows; ++r) {
    float top = -std::numeric_limits<float>::infinity();
    bool nan = false;
    double dot = 0.0;
    for (int64_t c = 0; c < chunks; ++c) {
      const float m = maxPtr[c * rows + r];
      nan = nan || std::isnan(m) || std::isnan(sumPtr[c * rows + r]);
      top = std::max(top, m);
      dot += dotPtr[c * rows + r];
    }
    o[2 * r + 1] = weights.defined() ? dot : 0.0;
    if (nan) {
      o[2 * r] = std::numeric_limits<double>::quiet_NaN();
      continue;
    }
    double s = 0.0;
    for (int64_t c = 0; c < chunks; ++c) {
      const float m = maxPtr[c * rows + r];
      if (m != -std::numeric_limits<float>::infinity()) {
        s += sumPtr[c * rows + r] * std::exp(static_cast<double>(m) - static_cast<double>(top));
      }
    }
    o[2 * r] = static_cast<double>(top) + std::log(s);
  }
  return out;
}

}  // namespace autocircuit::kernels
