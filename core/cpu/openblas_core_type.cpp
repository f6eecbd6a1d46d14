// Replaces OpenBLAS's SSE3 fallback by the kernels the processor's features allow.
// OpenBLAS reads OPENBLAS_CORETYPE in its own constructor, before main, and the C library
// resets the environment after the executable's earliest hooks, so the variable cannot be set
// for it in time from inside the program. Its DYNAMIC_ARCH build (Debian's) exports the
// selection itself, gotoblas_dynamic_quit/gotoblas_dynamic_init: they are called once, before
// any BLAS call, with the variable set. Declared weak: an OpenBLAS built for one processor only
// lacks them, and then keeps its kernels.
#include "core/cpu/openblas_core_type.h"

#include <cctype>
#include <cstdlib>

extern "C" {
char* openblas_get_corename(void);
[[gnu::weak]] void gotoblas_dynamic_init(void);
[[gnu::weak]] void gotoblas_dynamic_quit(void);
}

namespace zt::cpu {

namespace {

std::string lower(std::string text) {
  for (char& c : text) c = char(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool choose_kernels() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return false;  // the user's choice stands
  if (lower(openblas_core_name()) != "prescott") return false;    // OpenBLAS knew this core
  const std::string core_type = openblas_core_type_for_this_cpu();
  if (core_type.empty() || gotoblas_dynamic_init == nullptr || gotoblas_dynamic_quit == nullptr)
    return false;
  setenv("OPENBLAS_CORETYPE", core_type.c_str(), /*overwrite=*/0);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  return true;
}

}  // namespace

std::string openblas_core_type_for_this_cpu() {
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return "";
}

void ensure_openblas_kernels() {
  [[maybe_unused]] static const bool chosen = choose_kernels();  // once, thread-safe
}

std::string openblas_core_name() {
  const char* name = openblas_get_corename();
  return name != nullptr ? name : "";
}

}  // namespace zt::cpu
