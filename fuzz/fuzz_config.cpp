// libFuzzer target: arbitrary text through dist::parse_config, at a world size of 1..8 taken from
// the input's length. ConfigError rejections are fine; a crash, a sanitizer report, an escaping
// exception or a broken invariant (fuzz/fuzz_inputs.h) is a bug. Built and run by `make fuzz`.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz/fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  zt::fuzz::run_config_input(std::span<const uint8_t>(data, size));
  return 0;
}
