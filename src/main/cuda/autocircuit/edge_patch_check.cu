// Standalone check and timing of the edge_patch CUDA kernels: no ATen, no Maven, no JVM. Build and run on a
// GPU machine from src/main/cuda:
//
//   nvcc -std=c++17 -O3 -I. -gencode arch=compute_90,code=sm_90 \
//        autocircuit/edge_patch.cu autocircuit/edge_patch_check.cu -o edge_patch_check
//   ./edge_patch_check                       # K1 shapes, fp32 and bf16, all mask layouts
//   ./edge_patch_check 800 768 144 12 3      # tokens dModel nIn heads masks
//
// For each case it runs the fused kernels and a naive kernel (one thread per output element, re-reading
// patch and curr for every row: what a per-module einsum costs), compares forward outputs, grad_input and
// grad_curr (max abs error, relative to the largest value), and times both with CUDA events after a warm-up,
// reporting GB/s of compulsory traffic (read patch, curr, input once; write every output once).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <cuda_bf16.h>

#include "autocircuit/cuda_check.h"
#include "autocircuit/edge_patch_cuda.h"

using namespace autocircuit::kernels::cuda;

namespace {

// ---- CPU reference (for tests) is the naive GPU kernel below, itself checked on small sizes against the host ----

template <typename T> __device__ __host__ inline float toF(T x);
template <> __device__ __host__ inline float toF<float>(float x) { return x; }
template <> __device__ __host__ inline float toF<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

// ---- naive kernels ----

// out[r][t][d] (rows stored mask after mask, [R][T][D] regardless of heads: compared row by row).
template <typename T>
__global__ void naive_forward(int64_t T_, int64_t D, int64_t nIn, int64_t R, int64_t S, int64_t B, bool mb, bool ms,
                              const T* input, const T* patch, const T* curr, const float* w, float* out) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= R * T_ * D) return;
  const int64_t r = e / (T_ * D), t = (e / D) % T_, d = e % D;
  const int64_t b = t / S, s = t % S;
  const int64_t g = (mb ? b * (ms ? S : 1) : 0) + (ms ? s : 0);
  float acc = toF(input[t * D + d]);
  for (int64_t i = 0; i < nIn; ++i) {
    const int64_t at = (i * T_ + t) * D + d;
    acc += w[(g * R + r) * nIn + i] * (toF(patch[at]) - toF(curr[at]));
  }
  out[e] = acc;
}

// gradCurr[i][t][d] = -sum_r w[g][r][i] * grad[r][t][d]; grad [R][T][D] fp32.
__global__ void naive_backward_curr(int64_t T_, int64_t D, int64_t nIn, int64_t R, int64_t S, bool mb, bool ms,
                                    const float* w, const float* grad, float* gradCurr) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= nIn * T_ * D) return;
  const int64_t i = e / (T_ * D), t = (e / D) % T_, d = e % D;
  const int64_t b = t / S, s = t % S;
  const int64_t g = (mb ? b * (ms ? S : 1) : 0) + (ms ? s : 0);
  float acc = 0.f;
  for (int64_t r = 0; r < R; ++r) acc += w[(g * R + r) * nIn + i] * grad[(r * T_ + t) * D + d];
  gradCurr[e] = -acc;
}

__global__ void to_float(int64_t n, const __nv_bfloat16* src, float* dst) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < n) dst[e] = __bfloat162float(src[e]);
}
__global__ void to_float(int64_t n, const float* src, float* dst) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < n) dst[e] = src[e];
}

// ---- helpers ----

struct DeviceBuffer {  // RAII
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) { AC_CUDA_CHECK(cudaMalloc(&p, bytes == 0 ? 1 : bytes)); }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(p); }
};

struct Events {  // RAII
  cudaEvent_t start, stop;
  Events() {
    AC_CUDA_CHECK(cudaEventCreate(&start));
    AC_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~Events() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
};

template <typename Fn>
float timeMs(cudaStream_t stream, int iters, Fn&& fn) {
  for (int k = 0; k < 3; ++k) fn();  // warm-up
  Events ev;
  AC_CUDA_CHECK(cudaEventRecord(ev.start, stream));
  for (int k = 0; k < iters; ++k) fn();
  AC_CUDA_CHECK(cudaEventRecord(ev.stop, stream));
  AC_CUDA_CHECK(cudaEventSynchronize(ev.stop));
  float ms = 0.f;
  AC_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.start, ev.stop));
  return ms / iters;
}

std::vector<float> download(const float* dev, size_t n) {
  std::vector<float> host(n);
  AC_CUDA_CHECK(cudaMemcpy(host.data(), dev, n * sizeof(float), cudaMemcpyDeviceToHost));
  return host;
}

// max |a - b| / max(1, max |b|)
double relErr(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, scale = 1;
  for (size_t k = 0; k < a.size(); ++k) {
    err = std::max(err, double(std::fabs(a[k] - b[k])));
    scale = std::max(scale, double(std::fabs(b[k])));
  }
  return err / scale;
}

template <typename T>
T fromHost(float x);
template <> float fromHost<float>(float x) { return x; }
template <> __nv_bfloat16 fromHost<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

// ---- one case ----

template <typename T>
bool runCase(int64_t B, int64_t S, int64_t D, int64_t nIn, int64_t H, int masks, bool mb, bool ms, int iters) {
  const int64_t T_ = B * S, R = H * masks, G = (mb ? B : 1) * (ms ? S : 1);
  const DType dtype = sizeof(T) == 2 ? DType::BF16 : DType::F32;
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform;
  auto fill = [&](size_t n, bool unit) {
    std::vector<T> v(n);
    for (auto& x : v) x = fromHost<T>(unit ? uniform(rng) : normal(rng));
    return v;
  };
  const auto hInput = fill(T_ * D, false), hPatch = fill(nIn * T_ * D, false), hCurr = fill(nIn * T_ * D, false);
  std::vector<float> hW(G * R * nIn);
  for (auto& x : hW) x = uniform(rng);

  DeviceBuffer input(hInput.size() * sizeof(T)), patch(hPatch.size() * sizeof(T)), curr(hCurr.size() * sizeof(T));
  DeviceBuffer w(hW.size() * sizeof(float)), delta(hPatch.size() * sizeof(T));
  DeviceBuffer outs(R * T_ * D * sizeof(T)), outsF(R * T_ * D * sizeof(float)), naive(R * T_ * D * sizeof(float));
  DeviceBuffer gradCurr(nIn * T_ * D * sizeof(T)), gradCurrF(nIn * T_ * D * sizeof(float));
  DeviceBuffer gradCurrNaive(nIn * T_ * D * sizeof(float)), gradInput(T_ * D * sizeof(T));
  AC_CUDA_CHECK(cudaMemcpy(input.p, hInput.data(), hInput.size() * sizeof(T), cudaMemcpyHostToDevice));
  AC_CUDA_CHECK(cudaMemcpy(patch.p, hPatch.data(), hPatch.size() * sizeof(T), cudaMemcpyHostToDevice));
  AC_CUDA_CHECK(cudaMemcpy(curr.p, hCurr.data(), hCurr.size() * sizeof(T), cudaMemcpyHostToDevice));
  AC_CUDA_CHECK(cudaMemcpy(w.p, hW.data(), hW.size() * sizeof(float), cudaMemcpyHostToDevice));

  Shape shape;
  shape.batch = B;
  shape.seq = S;
  shape.dModel = D;
  shape.nIn = nIn;
  shape.rows = R;
  shape.maskBatch = mb;
  shape.maskSeq = ms;
  // The outputs of all masks live in one [masks][T][H][D] buffer; the naive kernel writes [R][T][D].
  MaskRows rows;
  rows.count = masks;
  for (int m = 0; m < masks; ++m) {
    rows.heads[m] = H;
    rows.rowOffset[m] = m * H;
    rows.base[m] = static_cast<char*>(outs.p) + size_t(m) * T_ * H * D * sizeof(T);
  }
  cudaStream_t stream = nullptr;

  edge_patch_forward(dtype, shape, input.p, patch.p, curr.p, w.as<float>(), rows, delta.p, stream);
  const unsigned blocks = unsigned((R * T_ * D + 255) / 256);
  naive_forward<T><<<blocks, 256, 0, stream>>>(T_, D, nIn, R, S, B, mb, ms, input.as<T>(), patch.as<T>(),
                                               curr.as<T>(), w.as<float>(), naive.as<float>());
  AC_CUDA_CHECK(cudaGetLastError());
  to_float<<<blocks, 256, 0, stream>>>(R * T_ * D, outs.as<T>(), outsF.as<float>());
  AC_CUDA_CHECK(cudaDeviceSynchronize());
  // Reorder fused [m][t][h][d] to [m*H+h][t][d] on the host for the comparison.
  const auto fused = download(outsF.as<float>(), R * T_ * D), ref = download(naive.as<float>(), R * T_ * D);
  std::vector<float> fusedRows(fused.size());
  for (int m = 0; m < masks; ++m)
    for (int64_t t = 0; t < T_; ++t)
      for (int64_t h = 0; h < H; ++h)
        std::memcpy(&fusedRows[((m * H + h) * T_ + t) * D], &fused[((m * T_ + t) * H + h) * D], D * sizeof(float));
  const double fwdErr = relErr(fusedRows, ref);

  // Backward (grad_curr): incoming gradients = the forward outputs themselves (any data will do).
  MaskRows grads = rows;
  edge_patch_backward(dtype, shape, w.as<float>(), grads, gradInput.p, gradCurr.p, false, stream);
  // Naive wants [R][T][D] fp32 gradients: fusedRows, uploaded.
  DeviceBuffer gradRows(fusedRows.size() * sizeof(float));
  AC_CUDA_CHECK(cudaMemcpy(gradRows.p, fusedRows.data(), fusedRows.size() * sizeof(float), cudaMemcpyHostToDevice));
  const unsigned cblocks = unsigned((nIn * T_ * D + 255) / 256);
  naive_backward_curr<<<cblocks, 256, 0, stream>>>(T_, D, nIn, R, S, mb, ms, w.as<float>(), gradRows.as<float>(),
                                                   gradCurrNaive.as<float>());
  to_float<<<cblocks, 256, 0, stream>>>(nIn * T_ * D, gradCurr.as<T>(), gradCurrF.as<float>());
  AC_CUDA_CHECK(cudaDeviceSynchronize());
  const double bwdErr = relErr(download(gradCurrF.as<float>(), nIn * T_ * D), download(gradCurrNaive.as<float>(), nIn * T_ * D));

  const float fusedMs = timeMs(stream, iters, [&] {
    edge_patch_forward(dtype, shape, input.p, patch.p, curr.p, w.as<float>(), rows, nullptr, stream);
  });
  const float naiveMs = timeMs(stream, iters, [&] {
    naive_forward<T><<<blocks, 256, 0, stream>>>(T_, D, nIn, R, S, B, mb, ms, input.as<T>(), patch.as<T>(),
                                                 curr.as<T>(), w.as<float>(), naive.as<float>());
  });
  const float bwdMs = timeMs(stream, iters, [&] {
    edge_patch_backward(dtype, shape, w.as<float>(), grads, gradInput.p, gradCurr.p, false, stream);
  });
  const double bytes = double(sizeof(T)) * (2.0 * nIn * T_ * D + T_ * D + double(R) * T_ * D);
  const double tol = sizeof(T) == 2 ? 1e-2 : 1e-5;
  const bool ok = fwdErr <= tol && bwdErr <= tol;
  std::printf("%-4s T=%-5lld D=%-4lld nIn=%-4lld R=%-3lld layout=%s%s  fwd err %.2e  bwd err %.2e  "
              "fused %.3f ms (%.0f GB/s)  naive %.3f ms  x%.1f  bwd %.3f ms  %s\n",
              sizeof(T) == 2 ? "bf16" : "fp32", (long long)T_, (long long)D, (long long)nIn, (long long)R,
              mb ? "b" : "-", ms ? "s" : "-", fwdErr, bwdErr, fusedMs, bytes / fusedMs / 1e6, naiveMs, naiveMs / fusedMs,
              bwdMs, ok ? "OK" : "MISMATCH");
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int device = 0;
    AC_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp prop;
    AC_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    std::printf("device: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    bool ok = true;
    if (argc >= 6) {
      const int64_t tokens = std::atoll(argv[1]), D = std::atoll(argv[2]), nIn = std::atoll(argv[3]),
                    H = std::atoll(argv[4]);
      const int masks = std::atoi(argv[5]);
      ok &= runCase<float>(1, tokens, D, nIn, H, masks, false, false, 50);
      ok &= runCase<__nv_bfloat16>(1, tokens, D, nIn, H, masks, false, false, 50);
    } else {
      // Small shapes in every layout (correctness), then K1 (GPT-2 small: D 768; Q/K/V of the last layer read 144
      // sources, Resid End 157; B*S in {256, 800, 4096}).
      for (int layout = 0; layout < 4; ++layout) {
        ok &= runCase<float>(3, 5, 37, 7, 2, 3, layout & 1, layout & 2, 5);
        ok &= runCase<__nv_bfloat16>(3, 5, 37, 7, 2, 3, layout & 1, layout & 2, 5);
      }
      for (int64_t tokens : {256, 800, 4096}) {
        ok &= runCase<float>(16, tokens / 16, 768, 144, 12, 3, false, false, 20);
        ok &= runCase<float>(16, tokens / 16, 768, 157, 1, 1, false, false, 20);
        ok &= runCase<__nv_bfloat16>(16, tokens / 16, 768, 144, 12, 3, false, false, 20);
      }
    }
    std::printf(ok ? "all OK\n" : "MISMATCHES\n");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edge_patch_check: %s\n", e.what());
    return 2;
  }
}
