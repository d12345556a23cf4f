// Picks the CPU tile-kernel variant once, at first use (baseline build flags; no ATen).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "autocircuit/cpu_kernels.h"

namespace autocircuit::kernels::cpu {

namespace isa_baseline {
extern const KernelTable kTable;
}
#if defined(AUTOCIRCUIT_HAVE_AVX2)
namespace isa_avx2 {
extern const KernelTable kTable;
}
#endif

namespace {

bool cpuHasAvx2Fma() {
#if defined(AUTOCIRCUIT_HAVE_AVX2) && (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

const KernelTable* choose() {
  const char* forced = std::getenv("AUTOCIRCUIT_CPU_ISA");
  if (forced != nullptr && std::strcmp(forced, "baseline") == 0) return &isa_baseline::kTable;
  const KernelTable* avx2 = kernelTableVariant(1);
  return avx2 != nullptr ? avx2 : &isa_baseline::kTable;
}

}  // namespace

const KernelTable* kernelTableVariant(int index) {
  if (index == 0) return &isa_baseline::kTable;
#if defined(AUTOCIRCUIT_HAVE_AVX2)
  if (index == 1 && cpuHasAvx2Fma()) return &isa_avx2::kTable;
#endif
  return nullptr;
}

namespace {
std::atomic<const KernelTable*>& current() {
  static std::atomic<const KernelTable*> table{choose()};  // thread-safe initialisation (C++11)
  return table;
}
}  // namespace

const KernelTable& kernelTable() { return *current().load(std::memory_order_acquire); }

bool useKernelTable(const char* isa) {
  for (int index = 0; index < 2; ++index) {
    const KernelTable* table = kernelTableVariant(index);
    if (table != nullptr && std::strcmp(table->isa, isa) == 0) {
      current().store(table, std::memory_order_release);
      return true;
    }
  }
  return false;
}

}  // namespace autocircuit::kernels::cpu
