// edge_patch: argument checks, mask packing, the autograd Function, and the CPU driver (at::parallel_for
// over tokens, calling the ISA-dispatched tile kernels of cpu_kernels.h).
#include "autocircuit/edge_patch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "autocircuit/cpu_kernels.h"
#include "autocircuit/kernels.h"

namespace autocircuit::kernels {
namespace {

using detail::Plan;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ---- argument checks (NativeKernels checks the same in Java first; these guard direct C++ callers) ----

Plan checkAndPlan(const at::Tensor& input, const std::vector<at::Tensor>& masks, const at::Tensor& patch,
                  const at::Tensor& curr, bool maskBatch, bool maskSeq, bool maskHead) {
  TORCH_CHECK(input.defined() && patch.defined() && curr.defined(),
              "edge_patch: input, patch and curr must be defined tensors");
  TORCH_CHECK(input.dim() == 3, "edge_patch: input must be [batch, seq, dModel], got shape ", input.sizes());
  TORCH_CHECK(patch.dim() == 4, "edge_patch: patch must be [nIn, batch, seq, dModel], got shape ", patch.sizes());
  TORCH_CHECK(curr.sizes() == patch.sizes(), "edge_patch: curr must have the shape of patch ", patch.sizes(),
              ", got ", curr.sizes());
  TORCH_CHECK(patch.size(1) == input.size(0) && patch.size(2) == input.size(1) && patch.size(3) == input.size(2),
              "edge_patch: patch must be [nIn, ", input.size(0), ", ", input.size(1), ", ", input.size(2),
              "] to match input, got ", patch.sizes());
  const auto dtype = input.scalar_type();
  // float16 only on CUDA: the CPU tile kernels have no float16 form (NativeKernels sends it to the reference)
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16 || (dtype == at::kHalf && input.is_cuda()),
              "edge_patch: input must be float32 or bfloat16", input.is_cuda() ? " or float16" : "", " on ",
              input.device(), ", got ", dtype);
  TORCH_CHECK(patch.scalar_type() == dtype, "edge_patch: patch must be ", dtype, " like input, got ",
              patch.scalar_type());
  TORCH_CHECK(curr.scalar_type() == dtype, "edge_patch: curr must be ", dtype, " like input, got ",
              curr.scalar_type());
  TORCH_CHECK(patch.device() == input.device(), "edge_patch: patch must be on ", input.device(), " like input, got ",
              patch.device());
  TORCH_CHECK(curr.device() == input.device(), "edge_patch: curr must be on ", input.device(), " like input, got ",
              curr.device());
  TORCH_CHECK(input.is_contiguous(), "edge_patch: input must be contiguous");
  TORCH_CHECK(patch.is_contiguous(), "edge_patch: patch must be contiguous");
  TORCH_CHECK(curr.is_contiguous(), "edge_patch: curr must be contiguous");
  TORCH_CHECK(!masks.empty(), "edge_patch: masks must not be empty");

  Plan plan;
  plan.batch = input.size(0);
  plan.seq = input.size(1);
  plan.dModel = input.size(2);
  plan.nIn = patch.size(0);
  plan.maskBatch = maskBatch;
  plan.maskSeq = maskSeq;
  plan.maskHead = maskHead;
  const int64_t rank = 1 + int64_t(maskBatch) + int64_t(maskSeq) + int64_t(maskHead);
  for (size_t m = 0; m < masks.size(); ++m) {
    const at::Tensor& mask = masks[m];
    TORCH_CHECK(mask.defined(), "edge_patch: masks[", m, "] is undefined");
    TORCH_CHECK(at::isFloatingType(mask.scalar_type()), "edge_patch: masks[", m,
                "] must be a floating-point tensor, got ", mask.scalar_type());
    TORCH_CHECK(mask.device() == input.device(), "edge_patch: masks[", m, "] must be on ", input.device(),
                " like input, got ", mask.device());
    TORCH_CHECK(mask.dim() == rank, "edge_patch: masks[", m, "] must have rank ", rank, " for this layout, got shape ",
                mask.sizes());
    int64_t dim = 0;
    if (maskBatch) {
      TORCH_CHECK(mask.size(dim) == plan.batch, "edge_patch: masks[", m, "] batch dimension must be ", plan.batch,
                  ", got ", mask.size(dim));
      ++dim;
    }
    if (maskSeq) {
      TORCH_CHECK(mask.size(dim) == plan.seq, "edge_patch: masks[", m, "] seq dimension must be ", plan.seq, ", got ",
                  mask.size(dim));
      ++dim;
    }
    const int64_t heads = maskHead ? mask.size(dim) : 1;
    TORCH_CHECK(mask.size(-1) == plan.nIn, "edge_patch: masks[", m, "] last dimension must be nIn = ", plan.nIn,
                ", got ", mask.size(-1));
    plan.rowOffset.push_back(plan.rows);
    plan.heads.push_back(heads);
    plan.rows += heads;
  }
  return plan;
}

// The masks as one fp32 tensor W [G, R, nIn] with G = (B or 1) * (S or 1): made of differentiable ops, so
// autograd carries grad_W back to each mask (and to its dtype).
at::Tensor packMasks(const Plan& plan, const std::vector<at::Tensor>& masks) {
  std::vector<at::Tensor> parts;
  parts.reserve(masks.size());
  for (const at::Tensor& mask : masks) {
    at::Tensor w = mask.to(at::kFloat);
    if (!plan.maskBatch) w = w.unsqueeze(0);
    if (!plan.maskSeq) w = w.unsqueeze(1);
    if (!plan.maskHead) w = w.unsqueeze(2);  // [Bm, Sm, H_m, nIn]
    parts.push_back(std::move(w));
  }
  at::Tensor w = parts.size() == 1 ? parts[0] : at::cat(parts, 2);  // [Bm, Sm, R, nIn]
  return w.reshape({plan.groups(), plan.rows, plan.nIn}).contiguous();
}

cpu::DType cpuDType(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 ? cpu::DType::BF16 : cpu::DType::F32;
}

cpu::Groups cpuGroups(const Plan& plan) {
  cpu::Groups g;
  g.batch = plan.batch;
  g.seq = plan.seq;
  g.maskBatch = plan.maskBatch;
  g.maskSeq = plan.maskSeq;
  return g;
}

// Row r of mask m, head h: base pointer and elements per token, as cpu::Rows wants them.
void rowPointers(const Plan& plan, const std::vector<at::Tensor>& perMask, std::vector<void*>& base,
                 std::vector<int64_t>& stride) {
  base.assign(plan.rows, nullptr);
  stride.assign(plan.rows, 0);
  for (size_t m = 0; m < perMask.size(); ++m) {
    for (int64_t h = 0; h < plan.heads[m]; ++h) {
      const int64_t r = plan.rowOffset[m] + h;
      stride[r] = plan.heads[m] * plan.dModel;
      if (perMask[m].defined()) {
        base[r] = static_cast<char*>(perMask[m].data_ptr()) + h * plan.dModel * perMask[m].element_size();
      }
    }
  }
}

// ---- binary masks ----

std::atomic<bool> sparseBinaryEnabled{true};
std::atomic<int64_t> sparseForwardCount{0};
std::atomic<bool> uniformEnabled{true};
std::atomic<int64_t> uniformForwardCount{0};

// SparseMasks (cpu_kernels.h) over the storage below, built when every mask value is 0 or 1 and the sparse form
// is cheaper than the dense tile product.
struct SparsePlan {
  std::vector<uint8_t> majority, sumAll;
  std::vector<int64_t> rowStart, neededStart;
  std::vector<int32_t> minority, needed;
  cpu::SparseMasks view() const {
    cpu::SparseMasks v;
    v.majority = majority.data();
    v.rowStart = rowStart.data();
    v.minority = minority.data();
    v.sumAll = sumAll.data();
    v.neededStart = neededStart.data();
    v.needed = needed.data();
    return v;
  }
};

// w: [G, R, nIn] fp32, contiguous, on the CPU. readAll: every group reads all of patch and curr (for the checksum).
// totalGiven: the caller supplies sum_i delta[i] (ForwardArgs::deltaSum), so groups with a majority-1 row need
// only their minorities' sources too.
// Returns false, leaving plan unspecified, when a value is not 0 or 1 or when the sparse form would not pay.
// Costs per model dimension, in vector operations: both forms first form delta = patch - curr for the sources they
// read (two loads and a store each: 3 per source). The dense form then does R * nIn multiply-adds with register
// blocking, about a quarter of an operation each (with 36 Q/K/V rows the sparse form was measured to pay up to a
// quarter of the dense count) and at least one per source for a few rows. The sparse form does an add per minority
// edge, plus the sum of all deltas where a majority-1 row needs it and no running sum gives it. So a single row (an MLP input) with a third of its edges
// set takes the sparse form, which reads only those sources, and 36 rows with many edges set the dense one.
// With readAll (mask gradients: both forms read every source for the checksum) the sparse form is taken up to a
// quarter of the dense multiply-adds, the rule this cost model generalises.
bool planSparse(const Plan& plan, const at::Tensor& w, bool readAll, bool totalGiven, SparsePlan& sp) {
  const int64_t G = plan.groups(), R = plan.rows, nIn = plan.nIn;
  if (G * R * nIn == 0) return false;
  const float* v = w.data_ptr<float>();
  // a dense row block shares each loaded delta among up to 6 rows; fewer rows do about an operation per source
  const int64_t denseCost = G * (3 * nIn + std::max<int64_t>(R * nIn / 4, nIn));
  // the sparse cost is at least the minority count
  const int64_t budget = readAll ? G * R * nIn / 4 : denseCost;
  sp.majority.assign(G * R, 0);
  sp.sumAll.assign(G, readAll ? 1 : 0);
  sp.rowStart.assign(G * R + 1, 0);
  sp.neededStart.assign(G + 1, 0);
  sp.minority.clear();
  sp.needed.clear();
  std::vector<uint8_t> used(nIn);
  int64_t sparseCost = 0;
  for (int64_t g = 0; g < G; ++g) {
    std::fill(used.begin(), used.end(), 0);
    for (int64_t r = 0; r < R; ++r) {
      const float* row = v + (g * R + r) * nIn;
      int64_t ones = 0;
      for (int64_t i = 0; i < nIn; ++i) {
        if (row[i] == 1.f) {
          ++ones;
        } else if (row[i] != 0.f) {
          return false;  // not binary (NaN included)
        }
      }
      const bool maj = 2 * ones > nIn;
      sp.majority[g * R + r] = maj;
      if (maj) sp.sumAll[g] = 1;
      const float minorityValue = maj ? 0.f : 1.f;
      for (int64_t i = 0; i < nIn; ++i) {
        if (row[i] == minorityValue) {
          sp.minority.push_back(int32_t(i));
          used[i] = 1;
        }
      }
      if (int64_t(sp.minority.size()) > budget) return false;
      sp.rowStart[g * R + r + 1] = int64_t(sp.minority.size());
    }
    if (!sp.sumAll[g] || (totalGiven && !readAll)) {
      for (int64_t i = 0; i < nIn; ++i) {
        if (used[i]) sp.needed.push_back(int32_t(i));
      }
    } else {
      sparseCost += 4 * nIn;  // every delta formed and summed
    }
    sp.neededStart[g + 1] = int64_t(sp.needed.size());
  }
  if (readAll) return true;  // within the budget above
  sparseCost += 3 * int64_t(sp.needed.size()) + int64_t(sp.minority.size());
  return sparseCost <= denseCost;
}

// ---- CPU driver ----

// Brings the running sum up to date for sources [0, nIn): adds patch - curr of the sources [rows, nIn) it does
// not hold yet. The caller has checked rows <= nIn.
void advanceRunningSum(const at::Tensor& patch, const at::Tensor& curr, const at::Tensor& deltaSum,
                       const at::Tensor& deltaRows) {
  int64_t* rows = deltaRows.data_ptr<int64_t>();
  const int64_t nIn = patch.size(0);
  // In chunks of sources, so that the temporary difference stays small (a few MB, in cache) however many sources
  // are added at once: the last destination of a pass may add all of them.
  constexpr int64_t kChunk = 8;
  while (*rows < nIn) {
    const int64_t n = std::min(kChunk, nIn - *rows);
    at::Tensor diff = patch.narrow(0, *rows, n).to(at::kFloat) - curr.narrow(0, *rows, n).to(at::kFloat);
    deltaSum.add_(diff.sum(0));
    *rows += n;
  }
}

// ---- uniform masks ----

// Whether every value of w [G, R, nIn] (fp32, contiguous, CPU) equals one finite value, returned in value.
bool uniformValue(const at::Tensor& w, float& value) {
  const int64_t n = w.numel();
  if (n == 0) return false;
  const float* v = w.data_ptr<float>();
  value = v[0];
  if (!std::isfinite(value)) return false;
  for (int64_t i = 1; i < n; ++i) {
    if (v[i] != value) return false;
  }
  return true;
}

// Every mask value equals a (integrated gradients' points): each output row is input + a * sum_i (patch[i] - curr[i]),
// so one sum over the sources per token replaces R * nIn multiply-adds (36 rows for GPT-2's Q/K/V inputs), and the
// call costs about what the sparse form costs at mask 0: one read of patch and curr. fp32 only. checksum: as in
// forwardCpu, computed over the same elements the backward pass reads.
void forwardUniformCpu(const Plan& plan, const at::Tensor& input, float a, const at::Tensor& patch,
                       const at::Tensor& curr, std::vector<at::Tensor>& outs, uint32_t* checksum) {
  const int64_t T = plan.tokens(), D = plan.dModel, nIn = plan.nIn;
  const float* in = input.data_ptr<float>();
  const float* p = patch.data_ptr<float>();
  const float* c = curr.data_ptr<float>();
  std::vector<void*> base;
  std::vector<int64_t> stride;
  rowPointers(plan, outs, base, stride);
  std::atomic<uint32_t> h0{0}, h1{0};
  at::parallel_for(0, T, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> sum(D);
    uint32_t s0 = 0, s1 = 0;
    for (int64_t t = begin; t < end; ++t) {
      std::fill(sum.begin(), sum.end(), 0.f);
      for (int64_t i = 0; i < nIn; ++i) {
        const float* pi = p + (i * T + t) * D;
        const float* ci = c + (i * T + t) * D;
        for (int64_t d = 0; d < D; ++d) sum[d] += pi[d] - ci[d];
        if (checksum != nullptr) {
          for (int64_t d = 0; d < D; ++d) {
            uint32_t u, v;
            std::memcpy(&u, pi + d, 4);
            std::memcpy(&v, ci + d, 4);
            s0 += u + v;
            s1 += u * cpu::kChecksumMultiplier + v * cpu::kChecksumMultiplier;
          }
        }
      }
      const float* x = in + t * D;
      for (int64_t r = 0; r < plan.rows; ++r) {
        float* o = static_cast<float*>(base[r]) + t * stride[r];
        for (int64_t d = 0; d < D; ++d) o[d] = x[d] + a * sum[d];
      }
    }
    h0.fetch_add(s0, std::memory_order_relaxed);
    h1.fetch_add(s1, std::memory_order_relaxed);
  });
  if (checksum != nullptr) {
    checksum[0] += h0.load();
    checksum[1] += h1.load();
  }
}

// checksum: nullptr, or [2] to receive the checksum of patch and curr (cpu_kernels.h).
// deltaSum, deltaRows: undefined, or the caller's running sum of patch - curr over sources [0, deltaRows[0])
// ([B, S, D] fp32 and one int64), used (and advanced to nIn) when some mask row has majority 1.
void forwardCpu(const Plan& plan, const at::Tensor& input, const at::Tensor& w, const at::Tensor& patch,
                const at::Tensor& curr, std::vector<at::Tensor>& outs, uint32_t* checksum, const at::Tensor& deltaSum,
                const at::Tensor& deltaRows) {
  SparsePlan sparse;
  const cpu::SparseMasks* sparseView = nullptr;
  cpu::SparseMasks view;
  // usable when it holds no more sources than this call reads (a call reading fewer forms its own sum)
  const bool running = deltaSum.defined() && checksum == nullptr && deltaRows.data_ptr<int64_t>()[0] <= plan.nIn;
  const float* total = nullptr;
  if (sparseBinaryEnabled.load(std::memory_order_relaxed) &&
      planSparse(plan, w, checksum != nullptr, running, sparse)) {
    view = sparse.view();
    sparseView = &view;
    sparseForwardCount.fetch_add(1, std::memory_order_relaxed);
    const bool anyAll = std::any_of(sparse.sumAll.begin(), sparse.sumAll.end(), [](uint8_t v) { return v != 0; });
    if (running && anyAll) {
      advanceRunningSum(patch, curr, deltaSum, deltaRows);
      total = deltaSum.data_ptr<float>();
    }
  }
  float value = 0.f;
  if (sparseView == nullptr && input.scalar_type() == at::kFloat && uniformEnabled.load(std::memory_order_relaxed) &&
      uniformValue(w, value)) {
    uniformForwardCount.fetch_add(1, std::memory_order_relaxed);
    forwardUniformCpu(plan, input, value, patch, curr, outs, checksum);
    return;
  }
  const at::Tensor wt = sparseView != nullptr ? w : w.transpose(1, 2).contiguous();  // dense: [G, nIn, R]
  std::vector<void*> base;
  std::vector<int64_t> stride;
  rowPointers(plan, outs, base, stride);

  cpu::ForwardArgs args;
  args.dtype = cpuDType(input);
  args.tokens = plan.tokens();
  args.dModel = plan.dModel;
  args.nIn = plan.nIn;
  args.groups = cpuGroups(plan);
  args.input = input.data_ptr();
  args.patch = patch.data_ptr();
  args.curr = curr.data_ptr();
  args.wt = wt.data_ptr<float>();
  args.out.count = plan.rows;
  args.out.base = base.data();
  args.out.tokenStride = stride.data();
  args.checksum = checksum;
  args.sparse = sparseView;
  args.deltaSum = total;

  const cpu::KernelTable& table = cpu::kernelTable();
  at::parallel_for(0, plan.tokens(), 1, [&](int64_t begin, int64_t end) { table.forward(args, begin, end); });
}

// patch, curr: the forward's, read (and checksummed into checksum[2]) only when gradW is defined.
void backwardCpu(const Plan& plan, at::ScalarType dtype, const at::Tensor& w, const at::Tensor& patch,
                 const at::Tensor& curr, const std::vector<at::Tensor>& grads, at::Tensor& gradInput, at::Tensor& gradW,
                 at::Tensor& gradCurr, uint32_t* checksum) {
  std::vector<void*> base;
  std::vector<int64_t> stride;
  rowPointers(plan, grads, base, stride);

  cpu::BackwardArgs args;
  args.dtype = dtype == at::kBFloat16 ? cpu::DType::BF16 : cpu::DType::F32;
  args.tokens = plan.tokens();
  args.dModel = plan.dModel;
  args.nIn = plan.nIn;
  args.groups = cpuGroups(plan);
  args.w = w.data_ptr<float>();
  args.gradOut.count = plan.rows;
  args.gradOut.base = base.data();
  args.gradOut.tokenStride = stride.data();
  if (gradW.defined()) {
    args.patch = patch.data_ptr();
    args.curr = curr.data_ptr();
    args.checksum = checksum;
  }
  args.gradInput = gradInput.defined() ? gradInput.data_ptr() : nullptr;
  args.gradCurr = gradCurr.defined() ? gradCurr.data_ptr() : nullptr;
  args.gradW = gradW.defined() ? gradW.data_ptr<float>() : nullptr;

  const cpu::KernelTable& table = cpu::kernelTable();
  const int64_t tokens = plan.tokens();
  if (tokens == 0) return;
  if (!gradW.defined()) {
    at::parallel_for(0, tokens, 1, [&](int64_t begin, int64_t end) {
      table.backward(args, begin, end, nullptr, nullptr);
    });
    return;
  }
  // Mask gradients sum over the tokens of a group, so the chunks are explicit: chunk c owns virtual tokens
  // [c * T / n, (c + 1) * T / n) and hands back (at most two) groups it shares with a neighbour.
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tokens));
  const int64_t rn = plan.rows * plan.nIn;
  at::Tensor partials = at::empty({2 * chunks, std::max<int64_t>(rn, 1)}, w.options());
  std::vector<cpu::PartialGroup> slots(2 * chunks);
  for (int64_t s = 0; s < 2 * chunks; ++s) slots[s].values = partials.data_ptr<float>() + s * std::max<int64_t>(rn, 1);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      table.backward(args, c * tokens / chunks, (c + 1) * tokens / chunks, &slots[2 * c], &slots[2 * c + 1]);
    }
  });
  float* gw = gradW.data_ptr<float>();
  for (const cpu::PartialGroup& slot : slots) {
    if (slot.group < 0) continue;
    float* target = gw + slot.group * rn;
    for (int64_t e = 0; e < rn; ++e) target[e] += slot.values[e];
  }
}

// ---- autograd ----

// The running sum of edge_patch's delta_sum / delta_rows, wrapped so that autograd does not take the (possibly
// undefined) tensors for inputs of the Function: they are state of the pass, not differentiable arguments.
struct RunningSum {
  at::Tensor sum;
  at::Tensor rows;
};

int64_t packChecksum(const uint32_t (&h)[2]) { return int64_t((uint64_t(h[0]) << 32) | h[1]); }

// Forward keeps no copy of patch - curr for the mask gradients: backward recomputes it from patch and curr, which
// are kept by reference (in saved_data, not save_for_backward: curr is typically a view of the buffer that later
// sources write, and autograd's version counter, shared by all views of a buffer, would then refuse backward
// although rows [0, nIn) never changed). Instead both passes checksum patch and curr and backward compares: a
// real in-place change in between is an error, not a silently wrong gradient. This saves the memory and the
// write of one [nIn, B, S, D] tensor per call (1.5 GB per GPT-2-small forward at B*S = 240).
class EdgePatchFunction : public torch::autograd::Function<EdgePatchFunction> {
 public:
  // w: [G, R, nIn] fp32 (packMasks); maskGradient: a mask gradient may be asked for later.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& w,
                               const at::Tensor& patch, const at::Tensor& curr, const Plan& plan, bool maskGradient,
                               const RunningSum& running) {
    ctx->set_materialize_grads(false);
    std::vector<at::Tensor> outs;
    outs.reserve(plan.heads.size());
    for (int64_t heads : plan.heads) {
      outs.push_back(plan.maskHead ? at::empty({plan.batch, plan.seq, heads, plan.dModel}, input.options())
                                   : at::empty({plan.batch, plan.seq, plan.dModel}, input.options()));
    }
    int64_t checksum = 0;
    at::Tensor deviceChecksum;  // CUDA: the checksum stays on the device until backward compares (no sync here)
    if (input.is_cuda()) {
#if defined(AUTOCIRCUIT_WITH_CUDA)
      if (maskGradient) deviceChecksum = detail::new_checksum_cuda(input);
      const bool sparse = detail::edge_patch_forward_cuda(plan, input, w, patch, curr, outs, deviceChecksum,
                                                          sparseBinaryEnabled.load(std::memory_order_relaxed),
                                                          running.sum, running.rows);
      if (sparse) sparseForwardCount.fetch_add(1, std::memory_order_relaxed);
#else
      TORCH_CHECK(false, "edge_patch: tensors are on ", input.device(),
                  " but this build of the native kernels has no CUDA support");
#endif
    } else {
      TORCH_CHECK(input.is_cpu(), "edge_patch: unsupported device ", input.device());
      uint32_t h[2] = {0, 0};
      forwardCpu(plan, input, w, patch, curr, outs, maskGradient ? h : nullptr, running.sum, running.rows);
      checksum = packChecksum(h);
    }
    ctx->save_for_backward({w});
    if (maskGradient) {
      ctx->saved_data["patch"] = patch.detach();
      ctx->saved_data["curr"] = curr.detach();
      ctx->saved_data["checksum"] = checksum;
      if (deviceChecksum.defined()) ctx->saved_data["deviceChecksum"] = deviceChecksum;
    }
    ctx->saved_data["batch"] = plan.batch;
    ctx->saved_data["seq"] = plan.seq;
    ctx->saved_data["dModel"] = plan.dModel;
    ctx->saved_data["nIn"] = plan.nIn;
    ctx->saved_data["maskBatch"] = plan.maskBatch;
    ctx->saved_data["maskSeq"] = plan.maskSeq;
    ctx->saved_data["maskHead"] = plan.maskHead;
    ctx->saved_data["heads"] = plan.heads;
    ctx->saved_data["dtype"] = input.scalar_type();
    return outs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradOutputs) {
    Plan plan;
    plan.batch = ctx->saved_data["batch"].toInt();
    plan.seq = ctx->saved_data["seq"].toInt();
    plan.dModel = ctx->saved_data["dModel"].toInt();
    plan.nIn = ctx->saved_data["nIn"].toInt();
    plan.maskBatch = ctx->saved_data["maskBatch"].toBool();
    plan.maskSeq = ctx->saved_data["maskSeq"].toBool();
    plan.maskHead = ctx->saved_data["maskHead"].toBool();
    plan.heads = ctx->saved_data["heads"].toIntVector();
    for (int64_t h : plan.heads) {
      plan.rowOffset.push_back(plan.rows);
      plan.rows += h;
    }
    const auto dtype = ctx->saved_data["dtype"].toScalarType();
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& w = saved[0];

    const bool needInput = ctx->needs_input_grad(0);
    const bool needW = ctx->needs_input_grad(1);
    const bool needCurr = ctx->needs_input_grad(3);
    const at::TensorOptions options = w.options().dtype(dtype);
    at::Tensor gradInput, gradW, gradCurr, patch, curr;
    if (needInput) gradInput = at::empty({plan.batch, plan.seq, plan.dModel}, options);
    if (needCurr) gradCurr = at::empty({plan.nIn, plan.batch, plan.seq, plan.dModel}, options);
    if (needW) {
      TORCH_CHECK(ctx->saved_data.count("patch") != 0,
                  "edge_patch: a mask gradient was requested, but the forward pass ran without one "
                  "(in no-grad mode, or with masks that did not require grad)");
      patch = ctx->saved_data["patch"].toTensor();
      curr = ctx->saved_data["curr"].toTensor();
      gradW = at::zeros_like(w);
    }
    std::vector<at::Tensor> grads(gradOutputs.size());
    for (size_t m = 0; m < gradOutputs.size(); ++m) {
      if (gradOutputs[m].defined()) grads[m] = gradOutputs[m].to(dtype).contiguous();
    }
    if (needInput || needW || needCurr) {
      int64_t checksum = 0;
      bool unchanged = true;
      if (w.is_cuda()) {
#if defined(AUTOCIRCUIT_WITH_CUDA)
        const at::Tensor deviceChecksum = needW ? detail::new_checksum_cuda(w) : at::Tensor();
        detail::edge_patch_backward_cuda(plan, w, patch, curr, grads, gradInput, gradW, gradCurr, deviceChecksum);
        // one 8-byte comparison on the device, then one sync
        if (needW) unchanged = at::equal(deviceChecksum, ctx->saved_data["deviceChecksum"].toTensor());
#else
        TORCH_CHECK(false, "edge_patch: backward on ", w.device(), " without CUDA support");
#endif
      } else {
        uint32_t h[2] = {0, 0};
        backwardCpu(plan, dtype, w, patch, curr, grads, gradInput, gradW, gradCurr, h);
        checksum = packChecksum(h);
        unchanged = !needW || checksum == ctx->saved_data["checksum"].toInt();
      }
      TORCH_CHECK(unchanged,
                  "edge_patch: patch or curr was modified in place between the forward and the backward pass "
                  "(rows [0, nIn) of their buffers must keep their values until backward); the mask gradients "
                  "would be wrong");
    }
    // One entry per forward argument: input, w, patch, curr, plan, maskGradient, running.
    return {gradInput, gradW, at::Tensor(), gradCurr, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool set_sparse_binary(bool enabled) { return sparseBinaryEnabled.exchange(enabled); }

int64_t sparse_forward_count() { return sparseForwardCount.load(); }

bool set_uniform(bool enabled) { return uniformEnabled.exchange(enabled); }

int64_t uniform_forward_count() { return uniformForwardCount.load(); }

std::vector<at::Tensor> edge_patch(const at::Tensor& input, const std::vector<at::Tensor>& masks,
                                   const at::Tensor& patch, const at::Tensor& curr, const at::Tensor& delta_sum,
                                   const at::Tensor& delta_rows, bool mask_batch, bool mask_seq, bool mask_head) {
  Plan plan = checkAndPlan(input, masks, patch, curr, mask_batch, mask_seq, mask_head);
  TORCH_CHECK(delta_sum.defined() == delta_rows.defined(),
              "edge_patch: delta_sum and delta_rows must both be given or both be undefined");
  if (delta_sum.defined()) {
    TORCH_CHECK(delta_sum.scalar_type() == at::kFloat && delta_sum.is_contiguous() &&
                    delta_sum.sizes() == input.sizes() && delta_sum.device() == input.device(),
                "edge_patch: delta_sum must be a contiguous float32 tensor of shape ", input.sizes(), " on ",
                input.device(), ", got ", delta_sum.scalar_type(), " ", delta_sum.sizes(), " on ", delta_sum.device());
    TORCH_CHECK(delta_rows.scalar_type() == at::kLong && delta_rows.numel() == 1 && delta_rows.is_cpu(),
                "edge_patch: delta_rows must be one int64 on the CPU, got ", delta_rows.scalar_type(), " ",
                delta_rows.sizes(), " on ", delta_rows.device());
    TORCH_CHECK(delta_rows.data_ptr<int64_t>()[0] >= 0, "edge_patch: delta_rows must be >= 0, got ",
                delta_rows.data_ptr<int64_t>()[0]);
  }
  at::Tensor w = packMasks(plan, masks);
  const bool maskGradient = at::GradMode::is_enabled() && w.requires_grad();
  return EdgePatchFunction::apply(input, w, patch, curr, plan, maskGradient, RunningSum{delta_sum, delta_rows});
}

}  // namespace autocircuit::kernels
