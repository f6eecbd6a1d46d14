// What each fuzz target does with one input, shared by the libFuzzer targets (fuzz/*.cpp) and
// the unit test that replays the seed corpora and fixed crash inputs (tests/io/test_fuzz_corpus).
// Each returns whether the input parsed; the errors a reader documents are a "no", anything else
// (another exception, a broken invariant of the result) escapes, which the fuzzer reports.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "data/idx.h"
#include "dist/config.h"

namespace zt::fuzz {

// Thrown when a reader accepts an input but returns something its contract rules out.
class BrokenInvariant : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

inline bool run_idx_input(std::span<const uint8_t> bytes) {
  data::IdxArray array;
  try {
    array = data::parse_idx(bytes, "fuzz-idx-ubyte");
  } catch (const std::runtime_error&) {
    return false;
  }
  uint64_t elems = 1;
  for (int64_t size : array.dims) elems *= uint64_t(size);
  if (array.dims.empty() || array.values.size() != elems) {
    throw BrokenInvariant("parse_idx: values do not hold the product of the dims");
  }
  return true;
}

inline bool run_safetensors_input(std::span<const uint8_t> bytes) {
  SafetensorsContents contents;
  try {
    contents = parse_safetensors(bytes, "fuzz.safetensors");
  } catch (const std::runtime_error&) {
    return false;
  }
  // Every byte after the header belongs to exactly one tensor.
  uint64_t tensor_bytes = 0;
  for (const auto& [name, tensor] : contents.tensors) {
    if (!tensor.is_contiguous()) throw BrokenInvariant("parse_safetensors: non-contiguous tensor");
    tensor_bytes += tensor.nbytes();
  }
  uint64_t header_bytes = 0;
  for (size_t i = 0; i < 8; ++i) header_bytes |= uint64_t(bytes[i]) << (8 * i);
  if (tensor_bytes != bytes.size() - 8 - header_bytes) {
    throw BrokenInvariant("parse_safetensors: tensors do not cover the data region");
  }
  return true;
}

// The data-parallel size a config input is parsed against: 1..8 from the text's length, so a
// seed stays a plain ds_config.json and the fuzzer reaches every size by adding a byte.
inline int config_world_size(size_t text_bytes) {
  return 1 + int(text_bytes % 8);
}

inline bool run_config_input(std::span<const uint8_t> bytes) {
  std::string text(bytes.begin(), bytes.end());
  int world_size = config_world_size(text.size());
  std::vector<std::string> warnings;
  dist::Config config;
  try {
    config = dist::parse_config(text, "fuzz_ds_config.json", world_size, &warnings);
  } catch (const dist::ConfigError&) {
    return false;
  }
  // The batch rule that parse_config enforces: total == micro * accumulation * world size.
  int64_t product = 0;
  if (config.train_micro_batch_size_per_gpu < 1 || config.gradient_accumulation_steps < 1 ||
      __builtin_mul_overflow(config.train_micro_batch_size_per_gpu,
                             config.gradient_accumulation_steps, &product) ||
      __builtin_mul_overflow(product, int64_t(world_size), &product) ||
      config.train_batch_size != product) {
    throw BrokenInvariant("parse_config: the batch triple breaks the batch rule");
  }
  return true;
}

}  // namespace zt::fuzz
