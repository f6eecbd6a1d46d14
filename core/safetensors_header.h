// Parsing and checking a safetensors header before anything is allocated from it: fields,
// dtypes, shapes, byte counts, offsets, and that the tensors tile the data region exactly.
// Internal to core/safetensors*.cpp: the public API is core/safetensors.h.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace zt::safetensors_detail {

using OrderedJson = nlohmann::ordered_json;

inline constexpr DType kSafetensorsDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16,
                                               DType::i32, DType::i64, DType::u8,  DType::i8};
inline constexpr const char* kMetadataKey = "__metadata__";
inline constexpr int kMaxHeaderNesting = 16;

[[noreturn]] inline void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}", path, what));
}

[[noreturn]] inline void fail_tensor(const std::string& path, const std::string& name,
                                     const std::string& what) {
  throw std::runtime_error(fmt::format("{}: tensor '{}': {}", path, name, what));
}

inline std::string supported_dtype_names() {
  std::string names;
  for (DType dtype : kSafetensorsDTypes) {
    if (!names.empty()) names += ", ";
    names += safetensors_dtype_name(dtype);
  }
  return names;
}

struct TensorEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin;  // byte range [begin, end) relative to the start of the data region
  uint64_t end;
};

struct ParsedHeader {
  std::vector<TensorEntry> entries;  // in header order
  SafetensorsMetadata metadata;
};

// Parses the header text of a file whose data region holds `data_region_bytes`; throws
// std::runtime_error naming the file, and the tensor where there is one, on anything wrong.
ParsedHeader parse_safetensors_header(const std::string& path, const std::string& text,
                                      uint64_t data_region_bytes);

}  // namespace zt::safetensors_detail
