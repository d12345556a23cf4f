// edge_patch_check: the standalone checker of the edge_patch CUDA kernels. No libtorch, no Maven, no JVM: built
// by src/main/cuda/build-checker.sh with nvcc and the CUDA runtime linked statically, it runs on a machine that
// has only the NVIDIA driver.
//
//   edge_patch_check               every case: small shapes, then GPT-2-small and Llama-3.2-1B shapes in every
//                                  mask layout and dtype, then the timed K1-style cases (GB/s beside the peak)
//   edge_patch_check --quick       the small shapes only (correctness, seconds)
//   edge_patch_check --host-only   the GPU-free self-tests of the reference and the harness (no device used)
//   --iters N                      timed iterations per kernel (default 20)
//
// For each case it fills the buffers on the device from hashed values (check_data.h), runs the dense forward (with
// the fused checksum), the sparse binary-mask forward and the running sum (binary cases), backward (input and curr
// gradients, overwrite and accumulate) and the mask gradient, and compares each result with the float64 host
// reference (reference.h) on all elements of small cases and on sampled elements of large ones, within the bound
// of harness.h. Exit codes: 0 all OK, 1 a mismatch, 2 an error (CUDA or arguments), 3 no CUDA device or driver.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "autocircuit/cuda_check.h"
#include "autocircuit/edge_patch_cuda.h"
#include "autocircuit/sparse_plan.h"
#include "check_data.h"
#include "harness.h"
#include "host_selftest.h"
#include "reference.h"

namespace kc = autocircuit::kernels::cuda;
using namespace autocircuit::check;

namespace {

// ---- device helpers ----

template <typename E> __device__ E storeAs(Dtype dtype, float x);
template <> __device__ float storeAs<float>(Dtype, float x) { return x; }
template <> __device__ __nv_bfloat16 storeAs<__nv_bfloat16>(Dtype, float x) { return __ushort_as_bfloat16(toBf16Bits(x)); }
template <> __device__ __half storeAs<__half>(Dtype, float x) { return __ushort_as_half(toF16Bits(x)); }
__device__ float loadFloat(float x) { return x; }
__device__ float loadFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ float loadFloat(__half x) { return __half2float(x); }

template <typename E>
__global__ void fillActivations(E* dst, int64_t n, Dtype dtype, uint64_t seed, uint64_t tensor) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    dst[k] = storeAs<E>(dtype, activation(dtype, seed, tensor, uint64_t(k)));
  }
}

__global__ void fillMasks(float* w, int64_t G, int64_t R, int64_t nIn, bool binary, uint32_t permille, uint64_t seed) {
  const int64_t n = G * R * nIn;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = k / nIn, i = k % nIn;
    w[k] = binary ? binaryMask(seed, uint64_t(row), uint64_t(i), uint64_t(nIn), permille) : denseMask(seed, uint64_t(k));
  }
}

template <typename E>
__global__ void gather(const E* src, const int64_t* index, int64_t n, float* out) {
  const int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k < n) out[k] = loadFloat(src[index[k]]);
}

// The per-module baseline (what AutoCircuit's per-module path costs, in plain element-wise kernels of our own, not
// libtorch): per mask, diff = patch - curr written out, then each output row reads diff again.
template <typename E>
__global__ void baselineDiff(const E* patch, const E* curr, float* diff, int64_t n) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    diff[k] = loadFloat(patch[k]) - loadFloat(curr[k]);
  }
}
template <typename E>
__global__ void baselineContract(const E* input, const float* diff, const float* w, int64_t T, int64_t D, int64_t nIn,
                                 int64_t R, int64_t r0, int64_t H, float* out) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= T * D) return;
  const int64_t t = e / D, d = e % D;
  for (int64_t h = 0; h < H; ++h) {
    float acc = loadFloat(input[e]);
    for (int64_t i = 0; i < nIn; ++i) acc += w[(r0 + h) * nIn + i] * diff[(i * T + t) * D + d];
    out[(t * H + h) * D + d] = acc;
  }
}

struct Buffer {  // RAII device memory
  void* p = nullptr;
  size_t bytes = 0;
  explicit Buffer(size_t n) : bytes(n) { AC_CUDA_CHECK(cudaMalloc(&p, n == 0 ? 1 : n)); }
  ~Buffer() { cudaFree(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  template <typename X> X* as() const { return static_cast<X*>(p); }
  void zero() { AC_CUDA_CHECK(cudaMemset(p, 0, bytes == 0 ? 1 : bytes)); }
};

unsigned blocksFor(int64_t n) { return unsigned(std::min<int64_t>((n + 255) / 256, 1 << 16)); }

template <typename Fn>
float timeMs(int iters, Fn&& fn) {
  for (int k = 0; k < 2; ++k) fn();  // warm-up
  cudaEvent_t start, stop;
  AC_CUDA_CHECK(cudaEventCreate(&start));
  AC_CUDA_CHECK(cudaEventCreate(&stop));
  AC_CUDA_CHECK(cudaEventRecord(start));
  for (int k = 0; k < iters; ++k) fn();
  AC_CUDA_CHECK(cudaEventRecord(stop));
  AC_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  AC_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / iters;
}

// Values of `src` (dtype E) at the given flat indices, as floats on the host.
template <typename E>
std::vector<float> fetch(const void* src, const std::vector<int64_t>& index) {
  if (index.empty()) return {};
  Buffer idx(index.size() * sizeof(int64_t)), out(index.size() * sizeof(float));
  AC_CUDA_CHECK(cudaMemcpy(idx.p, index.data(), index.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
  gather<E><<<blocksFor(int64_t(index.size())), 256>>>(static_cast<const E*>(src), idx.as<int64_t>(),
                                                       int64_t(index.size()), out.as<float>());
  AC_CUDA_CHECK(cudaGetLastError());
  std::vector<float> host(index.size());
  AC_CUDA_CHECK(cudaMemcpy(host.data(), out.p, host.size() * sizeof(float), cudaMemcpyDeviceToHost));
  return host;
}

// The checksum of patch and curr computed on the host from the hashed data (kernels' definition).
void hostChecksum(const Problem& p, uint32_t out[2]) {
  out[0] = out[1] = 0;
  const int64_t n = p.nIn * p.tokens() * p.dModel;
  for (uint64_t tensor : {uint64_t(kPatch), uint64_t(kCurr)}) {
    for (int64_t k = 0; k < n; ++k) {
      const float x = activation(p.dtype, p.seed, tensor, uint64_t(k));
      const uint32_t u = p.dtype == Dtype::F32 ? floatBits(x)
                         : p.dtype == Dtype::BF16 ? uint32_t(toBf16Bits(x)) << 16
                                                  : uint32_t(toF16Bits(x)) << 16;
      out[0] += u;
      out[1] += u * kc::kChecksumMultiplier;
    }
  }
}

kc::DType kernelDtype(Dtype d) { return d == Dtype::F32 ? kc::DType::F32 : d == Dtype::BF16 ? kc::DType::BF16 : kc::DType::F16; }

struct Totals {
  int cases = 0, failed = 0;
};

template <typename E>
bool runCase(const Case& c, double peakGBs, int iters, Totals& totals) {
  const Problem& p = c.problem;
  const int64_t T = p.tokens(), D = p.dModel, nIn = p.nIn, R = p.rows(), G = p.groups();
  const int64_t es = sizeof(E);
  const kc::DType dt = kernelDtype(p.dtype);
  const int64_t budget = c.timed ? 2048 : 20000;
  std::printf("[%s] %s\n", c.model.c_str(), p.describe().c_str());

  Buffer input(T * D * es), patch(nIn * T * D * es), curr(nIn * T * D * es), w(G * R * nIn * 4);
  Buffer outs(R * T * D * es), gradOut(R * T * D * es), gradInput(T * D * es), gradCurr(nIn * T * D * es);
  Buffer gradW(G * R * nIn * 4), sums(4 * sizeof(uint32_t)), deltaSum(T * D * 4);
  fillActivations<E><<<blocksFor(T * D), 256>>>(input.as<E>(), T * D, p.dtype, p.seed, kInput);
  fillActivations<E><<<blocksFor(nIn * T * D), 256>>>(patch.as<E>(), nIn * T * D, p.dtype, p.seed, kPatch);
  fillActivations<E><<<blocksFor(nIn * T * D), 256>>>(curr.as<E>(), nIn * T * D, p.dtype, p.seed, kCurr);
  fillActivations<E><<<blocksFor(R * T * D), 256>>>(gradOut.as<E>(), R * T * D, p.dtype, p.seed, kGradOut);
  fillMasks<<<blocksFor(G * R * nIn), 256>>>(w.as<float>(), G, R, nIn, p.binary, p.minorityPermille, p.seed);
  AC_CUDA_CHECK(cudaGetLastError());

  kc::Shape s;
  s.batch = p.batch;
  s.seq = p.seq;
  s.dModel = D;
  s.nIn = nIn;
  s.rows = R;
  s.maskBatch = p.maskBatch;
  s.maskSeq = p.maskSeq;
  kc::MaskRows rows, grads;
  rows.count = grads.count = int(p.heads.size());
  for (size_t m = 0; m < p.heads.size(); ++m) {
    rows.heads[m] = grads.heads[m] = p.heads[m];
    rows.rowOffset[m] = grads.rowOffset[m] = p.rowOffset(m);
    rows.base[m] = outs.as<char>() + T * p.rowOffset(m) * D * es;
    grads.base[m] = gradOut.as<char>() + T * p.rowOffset(m) * D * es;
  }
  std::vector<Comparison> results;
  auto compareRows = [&](const char* what, const void* buffer) {
    Comparison cmp;
    cmp.what = what;
    const auto idx = sampleIndices(R * T * D, budget, p.seed + 1);
    const auto got = fetch<E>(buffer, idx);
    for (size_t k = 0; k < idx.size(); ++k) {
      const RowAt at = unpackRow(p, idx[k]);
      cmp.add(idx[k], got[k], refForward(p, at.r, at.t, at.d), p.dtype);
    }
    results.push_back(cmp);
  };

  // forward, dense, with the fused checksum
  sums.zero();
  kc::edge_patch_forward(dt, s, input.p, patch.p, curr.p, w.as<float>(), rows, sums.as<uint32_t>(), nullptr);
  AC_CUDA_CHECK(cudaDeviceSynchronize());
  compareRows("forward", outs.p);

  // forward, sparse form (binary masks), without and with the running sum built in two steps
  kc::SparsePlanHost plan;
  std::unique_ptr<Buffer> sparseBytes;
  kc::SparseRows sparse;
  if (p.binary) {
    std::vector<float> hostW(G * R * nIn);
    for (int64_t g = 0; g < G; ++g)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t i = 0; i < nIn; ++i) hostW[(g * R + r) * nIn + i] = p.w(g, r, i);
    if (!kc::planBinaryMasks(hostW.data(), G, R, nIn, plan)) throw std::runtime_error("binary masks did not plan");
    const size_t a = plan.rowStart.size() * 8, b = plan.minority.size() * 4, c3 = plan.majority.size();
    sparseBytes = std::make_unique<Buffer>(a + b + c3 + plan.sumAll.size());
    char* base = sparseBytes->as<char>();
    AC_CUDA_CHECK(cudaMemcpy(base, plan.rowStart.data(), a, cudaMemcpyHostToDevice));
    if (b) AC_CUDA_CHECK(cudaMemcpy(base + a, plan.minority.data(), b, cudaMemcpyHostToDevice));
    AC_CUDA_CHECK(cudaMemcpy(base + a + b, plan.majority.data(), c3, cudaMemcpyHostToDevice));
    AC_CUDA_CHECK(cudaMemcpy(base + a + b + c3, plan.sumAll.data(), plan.sumAll.size(), cudaMemcpyHostToDevice));
    sparse.rowStart = reinterpret_cast<const int64_t*>(base);
    sparse.minority = reinterpret_cast<const int32_t*>(base + a);
    sparse.majority = reinterpret_cast<const uint8_t*>(base + a + b);
    sparse.sumAll = reinterpret_cast<const uint8_t*>(base + a + b + c3);
    outs.zero();
    kc::edge_patch_forward_sparse(dt, s, input.p, patch.p, curr.p, sparse, nullptr, rows, nullptr);
    AC_CUDA_CHECK(cudaDeviceSynchronize());
    compareRows("forward sparse", outs.p);

    deltaSum.zero();
    const int64_t half = nIn / 2;
    kc::edge_patch_running_sum(dt, s, patch.p, curr.p, 0, half, deltaSum.as<float>(), nullptr);
    kc::edge_patch_running_sum(dt, s, patch.p, curr.p, half, nIn, deltaSum.as<float>(), nullptr);
    AC_CUDA_CHECK(cudaDeviceSynchronize());
    Comparison running;
    running.what = "running sum";
    const auto idx = sampleIndices(T * D, budget, p.seed + 2);
    const auto got = fetch<float>(deltaSum.p, idx);
    for (size_t k = 0; k < idx.size(); ++k) running.add(idx[k], got[k], refRunningSum(p, nIn, idx[k] / D, idx[k] % D), Dtype::F32);
    results.push_back(running);
    outs.zero();
    kc::edge_patch_forward_sparse(dt, s, input.p, patch.p, curr.p, sparse, deltaSum.as<float>(), rows, nullptr);
    AC_CUDA_CHECK(cudaDeviceSynchronize());
    compareRows("forward sparse + running sum", outs.p);
  }

  // backward: input and curr gradients (overwrite), then accumulate onto them (the values double)
  kc::edge_patch_backward(dt, s, w.as<float>(), grads, gradInput.p, gradCurr.p, false, nullptr);
  AC_CUDA_CHECK(cudaDeviceSynchronize());
  for (int pass = 0; pass < 2; ++pass) {
    const double scale = pass == 0 ? 1.0 : 2.0;
    Comparison gi, gc;
    gi.what = pass == 0 ? "grad input" : "grad input (accumulated)";
    gc.what = pass == 0 ? "grad curr" : "grad curr (accumulated)";
    const auto ii = sampleIndices(T * D, budget, p.seed + 3);
    const auto gotI = fetch<E>(gradInput.p, ii);
    for (size_t k = 0; k < ii.size(); ++k) {
      RefValue ref = refGradInput(p, ii[k] / D, ii[k] % D);
      ref.value *= scale;
      ref.magnitude *= scale;
      gi.add(ii[k], gotI[k], ref, p.dtype);
    }
    const auto ci = sampleIndices(nIn * T * D, budget, p.seed + 4);
    const auto gotC = fetch<E>(gradCurr.p, ci);
    for (size_t k = 0; k < ci.size(); ++k) {
      const int64_t i = ci[k] / (T * D), t = (ci[k] / D) % T, d = ci[k] % D;
      RefValue ref = refGradCurr(p, i, t, d);
      ref.value *= scale;
      ref.magnitude *= scale;
      gc.add(ci[k], gotC[k], ref, p.dtype);
    }
    results.push_back(gi);
    results.push_back(gc);
    if (pass == 0) {
      kc::edge_patch_backward(dt, s, w.as<float>(), grads, gradInput.p, gradCurr.p, true, nullptr);
      AC_CUDA_CHECK(cudaDeviceSynchronize());
    }
  }

  // mask gradient, with the checksum (must equal the forward's)
  gradW.zero();
  kc::edge_patch_mask_grad(dt, s, patch.p, curr.p, grads, gradW.as<float>(), sums.as<uint32_t>() + 2, nullptr);
  AC_CUDA_CHECK(cudaDeviceSynchronize());
  {
    Comparison gw;
    gw.what = "grad mask";
    const int64_t perEntry = T / G * D;
    const int64_t wBudget = std::max<int64_t>(16, std::min<int64_t>(budget, 40000000 / std::max<int64_t>(perEntry, 1)));
    const auto idx = sampleIndices(G * R * nIn, wBudget, p.seed + 5);
    const auto got = fetch<float>(gradW.p, idx);
    for (size_t k = 0; k < idx.size(); ++k) {
      const int64_t g = idx[k] / (R * nIn), r = (idx[k] / nIn) % R, i = idx[k] % nIn;
      gw.add(idx[k], got[k], refGradW(p, g, r, i), Dtype::F32);
    }
    results.push_back(gw);
  }
  uint32_t deviceSums[4];
  AC_CUDA_CHECK(cudaMemcpy(deviceSums, sums.p, sizeof deviceSums, cudaMemcpyDeviceToHost));
  bool checksumOk = deviceSums[0] == deviceSums[2] && deviceSums[1] == deviceSums[3];
  std::string checksumNote = "forward and mask-gradient checksums agree";
  if (nIn * T * D <= 20000000) {
    uint32_t host[2];
    hostChecksum(p, host);
    checksumOk = checksumOk && host[0] == deviceSums[0] && host[1] == deviceSums[1];
    checksumNote += " and equal the host's";
  }

  bool ok = checksumOk;
  for (const Comparison& cmp : results) {
    ok = ok && cmp.ok();
    std::printf("  %-4s %s\n", cmp.ok() ? "ok" : "FAIL", cmp.summary().c_str());
  }
  std::printf("  %-4s checksum: %s\n", checksumOk ? "ok" : "FAIL", checksumNote.c_str());

  if (c.timed) {
    const double fwdBytes = forwardBytes(p);
    const float fwdMs = timeMs(iters, [&] {
      kc::edge_patch_forward(dt, s, input.p, patch.p, curr.p, w.as<float>(), rows, nullptr, nullptr);
    });
    std::printf("  time forward           %8.3f ms  %7.0f GB/s  %5.1f%% of peak\n", fwdMs, gbPerSecond(fwdBytes, fwdMs),
                100 * gbPerSecond(fwdBytes, fwdMs) / peakGBs);
    if (p.binary) {
      const float spMs = timeMs(iters, [&] {
        kc::edge_patch_forward_sparse(dt, s, input.p, patch.p, curr.p, sparse, deltaSum.as<float>(), rows, nullptr);
      });
      std::printf("  time forward sparse    %8.3f ms  (with the running sum; %.2fx the dense kernel; GPU cost model "
                  "picks %s)\n", spMs, fwdMs / spMs, kc::sparsePaysOnGpu(plan, nIn) ? "sparse" : "dense");
    }
    const float bwdMs = timeMs(iters, [&] {
      kc::edge_patch_backward(dt, s, w.as<float>(), grads, gradInput.p, gradCurr.p, false, nullptr);
    });
    std::printf("  time backward in/curr  %8.3f ms  %7.0f GB/s  %5.1f%% of peak\n", bwdMs,
                gbPerSecond(backwardBytes(p), bwdMs), 100 * gbPerSecond(backwardBytes(p), bwdMs) / peakGBs);
    const float mgMs = timeMs(iters, [&] {
      gradW.zero();
      kc::edge_patch_mask_grad(dt, s, patch.p, curr.p, grads, gradW.as<float>(), nullptr, nullptr);
    });
    std::printf("  time mask gradient     %8.3f ms  %7.0f GB/s  %5.1f%% of peak\n", mgMs,
                gbPerSecond(maskGradBytes(p), mgMs), 100 * gbPerSecond(maskGradBytes(p), mgMs) / peakGBs);
    Buffer diff(nIn * T * D * 4), base(R * T * D * 4);
    const float baseMs = timeMs(iters, [&] {
      for (size_t m = 0; m < p.heads.size(); ++m) {
        baselineDiff<E><<<blocksFor(nIn * T * D), 256>>>(patch.as<E>(), curr.as<E>(), diff.as<float>(), nIn * T * D);
        baselineContract<E><<<unsigned((T * D + 255) / 256), 256>>>(input.as<E>(), diff.as<float>(), w.as<float>(), T, D,
                                                                    nIn, R, p.rowOffset(m), p.heads[m],
                                                                    base.as<float>() + T * p.rowOffset(m) * D);
      }
    });
    AC_CUDA_CHECK(cudaGetLastError());
    std::printf("  time per-module base   %8.3f ms  (fused forward is %.1fx faster)\n", baseMs, baseMs / fwdMs);
  }
  ++totals.cases;
  if (!ok) ++totals.failed;
  return ok;
}

int usage() {
  std::printf("usage: edge_patch_check [--quick] [--host-only] [--iters N]\n");
  return kExitError;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, hostOnly = false;
  int iters = 20;
  for (int k = 1; k < argc; ++k) {
    const std::string a = argv[k];
    if (a == "--quick") quick = true;
    else if (a == "--host-only") hostOnly = true;
    else if (a == "--iters" && k + 1 < argc) iters = std::max(1, std::atoi(argv[++k]));
    else if (a == "--help" || a == "-h") return usage(), kExitOk;
    else return usage();
  }
  if (hostOnly) return runHostSelfTest() == 0 ? kExitOk : kExitMismatch;

  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    std::printf("edge_patch_check: no CUDA device (%s); nothing to check on a GPU. `--host-only` runs the "
                "GPU-free self-tests.\n", status != cudaSuccess ? cudaGetErrorString(status) : "0 devices");
    return kExitNoDevice;
  }
  try {
    const auto started = std::chrono::steady_clock::now();
    AC_CUDA_CHECK(cudaSetDevice(0));
    cudaDeviceProp prop;
    AC_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    int clockKHz = 0, busBits = 0, runtime = 0, driver = 0;
    AC_CUDA_CHECK(cudaDeviceGetAttribute(&clockKHz, cudaDevAttrMemoryClockRate, 0));
    AC_CUDA_CHECK(cudaDeviceGetAttribute(&busBits, cudaDevAttrGlobalMemoryBusWidth, 0));
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    const double peak = peakBandwidthGBs(clockKHz, busBits);
    std::printf("device: %s, sm_%d%d, %.1f GiB, memory clock %d MHz x %d-bit bus: peak %.0f GB/s; runtime %d, driver "
                "%d\n", prop.name, prop.major, prop.minor, double(prop.totalGlobalMem) / (1 << 30), clockKHz / 1000,
                busBits, peak, runtime, driver);
    if (runHostSelfTest() != 0) {
      std::printf("host self-test failed: the reference cannot be trusted\n");
      return kExitMismatch;
    }
    Totals totals;
    for (const Case& c : buildCases(quick)) {
      switch (c.problem.dtype) {
        case Dtype::F32: runCase<float>(c, peak, iters, totals); break;
        case Dtype::BF16: runCase<__nv_bfloat16>(c, peak, iters, totals); break;
        case Dtype::F16: runCase<__half>(c, peak, iters, totals); break;
      }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("%d cases, %d failed, %.1f s: %s\n", totals.cases, totals.failed, seconds,
                totals.failed == 0 ? "all OK" : "MISMATCHES");
    return totals.failed == 0 ? kExitOk : kExitMismatch;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edge_patch_check: %s\n", e.what());
    return kExitError;
  }
}
