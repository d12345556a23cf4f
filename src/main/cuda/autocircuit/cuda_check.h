// AC_CUDA_CHECK: turns a CUDA error into a std::runtime_error naming the call, file and line. It never
// exits the process (unlike llm.c's cudaCheck_): the JVM above us must survive a failed launch.
#pragma once

#include <stdexcept>
#include <string>

#include <cuda_runtime.h>

namespace autocircuit::kernels::cuda {

inline void cudaCheck(cudaError_t status, const char* what, const char* file, int line) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA error in ") + what + " at " + file + ":" + std::to_string(line) +
                             ": " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
  }
}

}  // namespace autocircuit::kernels::cuda

#define AC_CUDA_CHECK(call) ::autocircuit::kernels::cuda::cudaCheck((call), #call, __FILE__, __LINE__)
