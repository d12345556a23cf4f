// The whole C++ surface that Java sees (bound by org.autocircuit.kernels.NativeKernelsLib).
//
// Every function may throw (c10::Error from TORCH_CHECK, std::bad_alloc, ...); JavaCPP turns the exception
// into a RuntimeException carrying what(), which NativeKernels wraps once in AutoCircuitNativeException.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

// JavaCPP's TensorVector is declared as std::vector<torch::Tensor>; torch::Tensor is at::Tensor.
namespace torch {
using at::Tensor;
}

namespace autocircuit::kernels {

/// Bumped whenever a signature below changes or a function is added; KernelAvailability refuses a library with another value.
int api_version();

/// The libtorch version of the headers this library was compiled against, e.g. "2.13.0".
std::string libtorch_version();

/// The CPU tile-kernel variant in use: "avx2" or "baseline".
std::string cpu_isa();

/// Switches the CPU tile kernels to isa ("baseline" or "avx2") for the whole process; returns false (and
/// changes nothing) when that variant is not compiled in or this CPU lacks its instructions. For tests and
/// comparisons: the baseline variant is what CPUs without AVX2/FMA run.
bool use_cpu_isa(const std::string& isa);

/// Whether this build contains the CUDA kernels (and so accepts CUDA tensors).
bool cuda_compiled();

/// Turns the sparse binary-mask forward path (edge_patch.cpp, planSparse) on or off for the whole process and
/// returns the previous setting; on by default. For tests and benchmarks.
bool set_sparse_binary(bool enabled);

/// How many CPU forward passes took the sparse binary-mask path so far (for tests and benchmarks).
int64_t sparse_forward_count();

/// Turns the uniform-mask forward path (every mask value equal, fp32: one sum of the differences per token instead
/// of the tile product) on or off for the whole process and returns the previous setting (for tests).
bool set_uniform(bool enabled);

/// How many CPU forward passes took the uniform-mask path so far (for tests and benchmarks).
int64_t uniform_forward_count();

/// One line describing the build, for logs.
std::string build_info();

/// Fused edge patching for masks.size() destination modules that read the same nIn sources:
///
///   out[m][b, s, (h), :] = input[b, s, :] + sum_i masks[m][(b), (s), (h), i] * (patch[i, b, s, :] - curr[i, b, s, :])
///
/// input [B, S, D]; patch and curr [nIn, B, S, D]; masks[m] [B?][S?][H_m?][nIn] (mask_batch, mask_seq,
/// mask_head say which dimensions are present). input, patch and curr: contiguous, one dtype (float32 or
/// bfloat16; bfloat16 accumulates in float32), one device. Masks: any floating dtype and strides, same
/// device. Returns one contiguous tensor per mask, [B, S, H_m, D] with a head dimension, else [B, S, D],
/// in the dtype of input.
///
/// When every mask value is exactly 0 or 1 (run_circuits, ACDC) the CPU forward pass works on the sparse form:
/// per output row, the sum of all differences once, then only the edges that differ from the row's majority
/// value (see cpu_kernels.h, SparseMasks), so its cost follows those edges instead of nIn.
///
/// delta_sum [B, S, D] fp32 and delta_rows (one int64 on the CPU), both optional (undefined), carry a running
/// sum across the calls of one forward pass: delta_sum holds sum_{i < delta_rows} (patch[i] - curr[i]). When a
/// sparse call needs the sum of all its differences (a row with majority 1) and delta_rows <= nIn, it adds the
/// sources [delta_rows, nIn) and sets delta_rows = nIn instead of reading all nIn sources, so a whole pass reads
/// each source's difference once for these rows. The caller starts each pass at delta_rows = 0 with zeros and
/// must pass views of the same source buffers (rows [0, nIn) unchanged) throughout; CPU only (ignored on CUDA).
///
/// Differentiable (a torch::autograd::Function) with respect to input, every mask and curr; patch gets
/// no gradient. No copy of patch - curr is kept for the mask gradients: backward recomputes it from patch and
/// curr, which must therefore keep their values until backward (writes to other rows of the buffers they are
/// views of are fine). A checksum taken in both passes turns a violation into an error, never a wrong gradient.
std::vector<at::Tensor> edge_patch(const at::Tensor& input, const std::vector<at::Tensor>& masks,
                                   const at::Tensor& patch, const at::Tensor& curr, const at::Tensor& delta_sum,
                                   const at::Tensor& delta_rows, bool mask_batch, bool mask_seq, bool mask_head);

/// The log-sum-exp over the vocabulary of the logits z = h . W + bias, per row, without materialising the logits:
/// ACDC's KL divergence against the clean output needs no other function of the whole vocabulary but a dot product
/// of the logits with the clean probabilities (docs/native.md, "ACDC on the component graph"). h [R, K]; w_packed
/// [P, K, 16] the unembedding W [K, V] in panels of 16 columns (w_packed[p][k][j] = W[k][16p + j], zero past V);
/// bias [16P], padded with -1e30 past V; weights optional (undefined) [W, 16P], zero past V, with W dividing R: row r
/// of h is weighted by row r mod W (several trials' rows against one set of clean probabilities). float32, CPU,
/// contiguous. Returns [R, 2] float64: per row max + log(sum exp(z - max)) and sum_v weights[r mod W][v] * z[v] (0
/// without weights), the sums accumulated lane-wise in float32 over chunks of 512 columns and in float64 across
/// them. A row's values depend on that row of h and weights only (not on R, the other rows or the number of
/// threads); NaN logits give NaN.
at::Tensor unembed_logsumexp(const at::Tensor& h, const at::Tensor& w_packed, const at::Tensor& bias,
                             const at::Tensor& weights);

}  // namespace autocircuit::kernels
