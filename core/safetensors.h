// safetensors files: an 8-byte little-endian header length N, N bytes of JSON (space-padded to a
// multiple of 8) describing each tensor's dtype, shape and byte range, then the raw data, tensors
// back to back in header order. Files written here open in PyTorch's safetensors.torch.load_file.
// Loading validates every field, size and offset before touching data: a file is data, never
// trusted; each problem is one std::runtime_error line naming the file (and tensor, if any).
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace zt {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using SafetensorsMetadata = std::map<std::string, std::string>;

struct SafetensorsContents {
  NamedTensors tensors;  // in file order, which is the order they were saved in
  SafetensorsMetadata metadata;

  // The tensor called `name`; throws std::out_of_range naming it.
  const Tensor& at(std::string_view name) const;
  bool contains(std::string_view name) const;
};

// Upper bound on the JSON header, as in the reference implementation: a larger length field is
// taken as a corrupt or hostile file rather than something to allocate.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// Writes `tensors` (any strides, written row-major; CPU only) atomically: a temporary file in
// the same directory, fsynced, renamed over `path`. Names must be unique and not "__metadata__".
// Data is laid out in save order with no padding (the format forbids gaps), so a reader that
// maps the file sees every tensor naturally aligned only when larger element types come first,
// as the reference writer arranges; load_safetensors copies into aligned buffers either way.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const SafetensorsMetadata& metadata = {});

// Reads every tensor into a new contiguous CPU tensor (allocated with the caller's current
// memory tag). Throws std::runtime_error on any malformed, truncated or inconsistent file.
SafetensorsContents load_safetensors(const std::string& path);

// The same from the bytes of a whole file in memory; `source_name` starts every message.
SafetensorsContents parse_safetensors(std::span<const uint8_t> bytes,
                                      const std::string& source_name);

// The format's dtype names: "F32", "F64", "F16", "BF16", "I32", "I64", "U8".
std::string_view safetensors_dtype_name(DType dtype);
std::optional<DType> dtype_from_safetensors_name(std::string_view name);

}  // namespace zt
