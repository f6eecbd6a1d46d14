// OpenBLAS runs the kernels of this processor's features, not its SSE3 fallback: the choice
// made before main (core/cpu/openblas_core_type.h) reaches OpenBLAS's loader.
#include <doctest/doctest.h>

#include <cctype>
#include <cstdlib>
#include <string>

#include "core/cpu/openblas_core_type.h"

TEST_CASE("OpenBLAS runs the kernels named for this processor's features") {
  const std::string wanted = zt::cpu::openblas_core_type_for_this_cpu();
  const char* user_choice = std::getenv("OPENBLAS_CORETYPE");
  if (wanted.empty() || (user_choice != nullptr && wanted != user_choice)) {
    MESSAGE("no AVX2/AVX-512 kernels to choose, or OPENBLAS_CORETYPE set otherwise");
    return;
  }
  zt::cpu::ensure_openblas_kernels();  // as the CPU backend does when first used
  // OpenBLAS reports its kernel set in its own spelling (lower case in some versions).
  std::string running = zt::cpu::openblas_core_name();
  for (char& c : running) c = char(std::tolower(c));
  std::string expected = wanted;
  for (char& c : expected) c = char(std::tolower(c));
  CHECK(running == expected);
}
