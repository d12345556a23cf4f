// The checker's GPU-free logic, compiled by g++ alone (no CUDA, no libtorch) and run by the JUnit test
// CudaCheckerHostTest:
//   g++ -std=c++17 -O1 -I src/main/cuda -I src/main/cuda/checker src/main/cuda/checker/host_test.cpp -o host_test
// Exit code: 0 when every self-test passed, 1 otherwise.
#include <cstdio>

#include "host_selftest.h"

int main() {
  const int failures = autocircuit::check::runHostSelfTest();
  std::printf(failures == 0 ? "host self-test: all OK\n" : "host self-test: FAILURES\n");
  return failures == 0 ? 0 : 1;
}
