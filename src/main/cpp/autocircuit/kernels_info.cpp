// Build facts for KernelAvailability and the logs (no ATen operators needed).
#include <string>

#include <torch/headeronly/version.h>

#include "autocircuit/cpu_kernels.h"
#include "autocircuit/kernels.h"

namespace autocircuit::kernels {

int api_version() { return 5; }

std::string libtorch_version() { return TORCH_VERSION; }

std::string cpu_isa() { return cpu::kernelTable().isa; }

bool use_cpu_isa(const std::string& isa) { return cpu::useKernelTable(isa.c_str()); }

bool cuda_compiled() {
#if defined(AUTOCIRCUIT_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

std::string build_info() {
  return "autocircuit native kernels (api " + std::to_string(api_version()) + ", libtorch " + libtorch_version() +
         " headers, cpu " + cpu_isa() + (cuda_compiled() ? ", cuda" : ", no cuda") + ")";
}

}  // namespace autocircuit::kernels
