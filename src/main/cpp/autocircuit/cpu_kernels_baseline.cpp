// The baseline build of the CPU tile kernels: 16-byte vectors, any x86-64 (SSE2) or other 64-bit CPU.
#define AC_ISA_NAMESPACE isa_baseline
#define AC_ISA_NAME "baseline"
#define AC_VEC_BYTES 16
#include "autocircuit/cpu_kernels_impl.h"
