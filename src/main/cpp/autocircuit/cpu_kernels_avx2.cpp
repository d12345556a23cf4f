// The x86-64-v3 build of the CPU tile kernels: 32-byte vectors and FMA. Compiled with -mavx2 -mfma
// -ffp-contract=fast by build-native.sh, and only on x86-64; cpu_dispatch.cpp calls it only when the CPU
// reports both AVX2 and FMA.
#if !defined(__AVX2__) || !defined(__FMA__)
#error "cpu_kernels_avx2.cpp must be compiled with -mavx2 -mfma"
#endif
#define AC_ISA_NAMESPACE isa_avx2
#define AC_ISA_NAME "avx2"
#define AC_VEC_BYTES 32
#include "autocircuit/cpu_kernels_impl.h"
