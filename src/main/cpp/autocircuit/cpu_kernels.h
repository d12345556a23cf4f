// The CPU tile kernels of edge_patch, behind a plain-C++ interface (no ATen, no STL).
//
// They are compiled twice, once for baseline x86-64 and once for x86-64-v3 (AVX2 + FMA), from the same
// source (cpu_kernels_impl.h); cpu_dispatch.cpp picks one at run time. Keeping ATen and the STL out of
// those translation units is what makes the double compile safe: an inline function from a shared header,
// compiled with -mavx2 in one unit and without in the other, would be merged by the linker into one copy,
// and the AVX2 copy could then run on a CPU without AVX2.
//
// Index names: t = token (b * seq + s), i = incoming source, r = output row (one per mask
// and destination head, r = rowOffset[m] + h), d = model dimension.
#pragma once

#include <cstddef>
#include <cstdint>

namespace autocircuit::kernels::cpu {

enum class DType : int32_t { F32 = 0, BF16 = 1 };

// Which token shares which mask row: the mask of a token t = (b, s) is group
//   g = (maskBatch ? b : 0) * (maskSeq ? seq : 1) + (maskSeq ? s : 0).
struct Groups {
  int64_t batch = 0;  // B
  int64_t seq = 0;    // S
  bool maskBatch = false;
  bool maskSeq = false;
};

// Output rows: where row r of token t lives. Row r writes
//   ((char*) rowBase[r]) + elementSize * (t * rowTokenStride[r] + d).
// For a mask with head dimension H, rowBase of head h is out_m + h * D and rowTokenStride is H * D.
struct Rows {
  int64_t count = 0;                          // R
  void* const* base = nullptr;                // [R]; backward: nullptr entries are rows without a gradient
  const int64_t* tokenStride = nullptr;       // [R] in elements
};

// Binary masks (every value 0 or 1) in sparse form, for the forward pass of run_circuits and ACDC. Row r of
// group g has a majority value maj = majority[g * R + r]; the sources whose mask differs from it (the minority)
// are minority[rowStart[g * R + r] .. rowStart[g * R + r + 1]). Then
//   out[r] = input + (maj ? sum_i delta[i] : 0) + (maj ? -1 : +1) * sum_{i in minority} delta[i]
// so the work per row follows the number of edges that differ from the majority, not nIn. sumAll[g] says that
// some row of group g has majority 1, so sum_i delta[i] is needed: it is read from ForwardArgs::deltaSum when
// given (the caller's running sum over the same sources), else all of patch and curr are read to form it. Only
// the sources needed[neededStart[g] .. neededStart[g + 1]) (the union of the rows' minorities) are read besides;
// with sumAll[g] set and no deltaSum that list is empty (every source is read anyway).
struct SparseMasks {
  const uint8_t* majority = nullptr;    // [G * R]
  const int64_t* rowStart = nullptr;    // [G * R + 1]
  const int32_t* minority = nullptr;    // source indices
  const uint8_t* sumAll = nullptr;      // [G]
  const int64_t* neededStart = nullptr; // [G + 1]
  const int32_t* needed = nullptr;      // source indices, ascending
};

struct ForwardArgs {
  DType dtype = DType::F32;
  int64_t tokens = 0;  // B * S
  int64_t dModel = 0;  // D
  int64_t nIn = 0;
  Groups groups;
  const void* input = nullptr;  // [T, D]
  const void* patch = nullptr;  // [nIn, T, D]
  const void* curr = nullptr;   // [nIn, T, D]
  const float* wt = nullptr;    // [G, nIn, R] the masks, transposed and packed, fp32
  Rows out;                     // outputs, dtype
  uint32_t* checksum = nullptr; // optional [2]: receives (adds) the checksum of patch and curr, see below
  const SparseMasks* sparse = nullptr;  // optional: binary masks in sparse form (then wt is not read). With a
                                        // checksum, every sumAll[g] must be set (all of patch and curr are read)
  const float* deltaSum = nullptr;      // optional with sparse (never with a checksum): [T, D] fp32, the sum over
                                        // all nIn sources of patch - curr, for the groups with sumAll set
};

struct BackwardArgs {
  DType dtype = DType::F32;
  int64_t tokens = 0;
  int64_t dModel = 0;
  int64_t nIn = 0;
  Groups groups;
  const float* w = nullptr;       // [G, R, nIn] fp32
  Rows gradOut;                   // incoming gradients, dtype; nullptr rows are zero
  const void* patch = nullptr;    // [nIn, T, D]; read iff gradW (patch - curr is recomputed, not saved)
  const void* curr = nullptr;     // [nIn, T, D]; read iff gradW
  uint32_t* checksum = nullptr;   // [2] when gradW: receives (adds) the checksum of patch and curr as read
  void* gradInput = nullptr;      // optional [T, D], dtype
  void* gradCurr = nullptr;       // optional [nIn, T, D], dtype
  float* gradW = nullptr;         // optional [G, R, nIn] fp32, zero on entry
};

// The checksum of patch and curr: over every element x of both, h0 += bits(x) and h1 += bits(x) * 0x9E3779B1,
// modulo 2^32 (bits: the float32 pattern; a bfloat16's 16 bits shifted left by 16). Sums commute, so the value
// does not depend on the split into threads, tiles or ISA variants. Forward computes it when a mask gradient may
// follow; backward recomputes patch - curr from the same tensors and compares, so that an in-place change of
// patch or curr in between is reported instead of producing wrong mask gradients.
constexpr uint32_t kChecksumMultiplier = 0x9E3779B1u;

// A mask-gradient accumulator for a group that a backward chunk only partly covers; the caller adds
// it into gradW after all chunks have run (at most two per chunk: its first and its last group).
struct PartialGroup {
  int64_t group = -1;   // -1: unused
  float* values = nullptr;  // [R, nIn], provided by the caller
};

// The helpers below are `static inline` on purpose: each translation unit (and so each ISA variant)
// gets its own copy, and the linker never has to pick one.
static inline int64_t groupCount(const Groups& g) {
  return (g.maskBatch ? g.batch : 1) * (g.maskSeq ? g.seq : 1);
}
static inline int64_t groupOfToken(const Groups& g, int64_t t) {
  int64_t b = t / g.seq, s = t % g.seq;
  return (g.maskBatch ? b * (g.maskSeq ? g.seq : 1) : 0) + (g.maskSeq ? s : 0);
}

// Backward works on "virtual" token ranges in which the tokens of each mask group are contiguous
// (for a seq-only mask the order is s-major; otherwise it is the token order). Group g occupies
// virtual tokens [g * groupSize, (g + 1) * groupSize).
static inline int64_t groupSize(const Groups& g) {
  if (g.maskSeq && !g.maskBatch) return g.batch;
  if (g.maskBatch) return g.maskSeq ? 1 : g.seq;
  return g.batch * g.seq;
}
static inline int64_t tokenOfVirtual(const Groups& g, int64_t v) {
  if (g.maskSeq && !g.maskBatch) return (v % g.batch) * g.seq + v / g.batch;
  return v;
}

// The log-sum-exp over the vocabulary of logits = h . W + bias, without storing the logits (unembed_lse.cpp, ACDC's
// KL divergence). W [K, V] is packed in panels of kLsePanel columns, wPacked[p][k][j] = W[k][p * kLsePanel + j]
// (zero past V), and bias is padded to P * kLsePanel with kLsePad, so that padded columns add nothing. The panel
// width is the same in every ISA variant, so one packing serves both.
constexpr int64_t kLsePanel = 16;

struct LseArgs {
  int64_t rows = 0;                // R
  int64_t dModel = 0;              // K
  const float* h = nullptr;        // [R, K]
  const float* wPacked = nullptr;  // [P, K, kLsePanel]
  const float* bias = nullptr;     // [P * kLsePanel], padded with kLsePad
  const float* weights = nullptr;  // optional [W, padded], zero past V: per row also sum_v weights[r % W][v] * logit[v]
  int64_t weightRows = 0;          // W (divides R)
  int64_t padded = 0;              // P * kLsePanel
};

// The bias of the padded columns: exp underflows to 0 and 0 * kLsePad is 0 (-inf would make the dot product NaN).
constexpr float kLsePad = -1e30f;

struct KernelTable {
  const char* isa;
  // Tokens [tokenBegin, tokenEnd) of the forward pass.
  void (*forward)(const ForwardArgs& args, int64_t tokenBegin, int64_t tokenEnd);
  // Virtual tokens [vBegin, vEnd) of the backward pass; head and tail receive the mask gradient of a
  // group that begins before vBegin or ends after vEnd (they must hold R * nIn floats each).
  void (*backward)(const BackwardArgs& args, int64_t vBegin, int64_t vEnd, PartialGroup* head,
                   PartialGroup* tail);
  // Panels [panelBegin, panelEnd) of the log-sum-exp: for each row r, rowMax[r] receives the largest logit of
  // those panels, rowSum[r] the sum of exp(logit - rowMax[r]) over them and, with weights, rowDot[r] the sum of
  // weights[r][v] * logit[v]. Each row's values depend on that row of h (and of weights) only, never on R or on the
  // other rows.
  void (*logSumExpPanels)(const LseArgs& args, int64_t panelBegin, int64_t panelEnd, float* rowMax,
                          double* rowSum, double* rowDot);
};

// The variant for this CPU: AVX2+FMA where the CPU has both (x86-64 only), the baseline build otherwise.
// AUTOCIRCUIT_CPU_ISA=baseline in the environment forces the baseline (for tests and comparisons).
const KernelTable& kernelTable();

// Switches to the variant named isa ("baseline", "avx2") for the whole process, when it is compiled in and
// this CPU supports it; returns whether it did. For tests and comparisons.
bool useKernelTable(const char* isa);

// Both variants, for tests: index 0 is the baseline, 1 the AVX2 build (nullptr when not compiled in or not
// supported by this CPU).
const KernelTable* kernelTableVariant(int index);

}  // namespace autocircuit::kernels::cpu
