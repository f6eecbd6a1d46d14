// OpenBLAS's kernel selection (see blas_core_type.h). OpenBLAS built with DYNAMIC_ARCH chooses
// its kernel table in a load-time constructor, reading OPENBLAS_CORETYPE; the table can be
// chosen again through gotoblas_dynamic_quit/init as long as no BLAS call is running. The
// symbols are weak: an OpenBLAS built for one core lacks them, and then nothing changes.
#include "core/cpu/blas_core_type.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

extern "C" {
__attribute__((weak)) char* openblas_get_corename(void);
__attribute__((weak)) void gotoblas_dynamic_init(void);
__attribute__((weak)) void gotoblas_dynamic_quit(void);
}

namespace zt::cpu {

namespace {

// The newest core OpenBLAS 0.3.21 knows whose kernels this CPU can run, or nullptr.
const char* best_known_core() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

void reselect_if_fallen_back() {
  if (openblas_get_corename == nullptr || gotoblas_dynamic_init == nullptr ||
      gotoblas_dynamic_quit == nullptr) {
    return;
  }
  // The user's choice stands; only the fallback of an unrecognised model is replaced.
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const char* current = openblas_get_corename();
  if (current == nullptr || std::strcmp(current, "Prescott") != 0) return;
  const char* better = best_known_core();
  if (better == nullptr) return;
  setenv("OPENBLAS_CORETYPE", better, 1);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  unsetenv("OPENBLAS_CORETYPE");
}

}  // namespace

void select_blas_core_type() {
  static std::once_flag selected;
  std::call_once(selected, reselect_if_fallen_back);
}

std::string blas_core_type() {
  if (openblas_get_corename == nullptr) return "";
  const char* name = openblas_get_corename();
  return name == nullptr ? "" : name;
}

}  // namespace zt::cpu
