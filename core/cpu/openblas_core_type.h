// Which OpenBLAS kernels run. OpenBLAS picks them from the processor's model number when it
// loads, and Debian 12's 0.3.21 does not know recent Intel server cores (family 6, model 207
// among them): it falls back to its SSE3 "Prescott" kernels, measured 5x slower at sgemm than
// its AVX-512 ones on the same core (32 against 153 GFLOP/s, one thread).
#pragma once

#include <string>

namespace zt::cpu {

// Once per process, before the first BLAS call (cpu_gemm.cpp and the attention tiles call it):
// when OpenBLAS fell back to "Prescott" on a processor with AVX2 or AVX-512 and the user has not
// set OPENBLAS_CORETYPE, loads the kernels the processor's features allow (SkylakeX with
// AVX-512 F/BW/DQ/VL, Haswell with AVX2 and FMA). Any other choice of OpenBLAS's stands.
void ensure_openblas_kernels();

// The kernels OpenBLAS runs ("SkylakeX", "Haswell", "Prescott", ...; OpenBLAS's spelling).
std::string openblas_core_name();

// The kernels this processor's features allow ("" when neither AVX2 nor AVX-512 is there).
std::string openblas_core_type_for_this_cpu();

}  // namespace zt::cpu
