// OpenBLAS's kernels for this CPU. Debian's OpenBLAS picks its kernels from the CPU model
// number, and a model newer than its release (Sapphire and Emerald Rapids for 0.3.21) falls
// back to the SSE3 "Prescott" kernels: sgemm several times slower than the CPU can run.
#pragma once

#include <string>

namespace zt::cpu {

// Once per process, before the first BLAS call: when OpenBLAS fell back to Prescott although
// the CPU has AVX-512 (or AVX2 with FMA) and the user set no OPENBLAS_CORETYPE, re-selects the
// kernels of the newest core OpenBLAS knows with those instructions (SkylakeX, Haswell).
// A no-op with an OpenBLAS built for one core (no dynamic kernel table).
void select_blas_core_type();

// The core whose kernels OpenBLAS uses ("SkylakeX"), "" when it cannot say.
std::string blas_core_type();

}  // namespace zt::cpu
