// The safetensors header parser (core/safetensors_header.h): every field is checked against
// the format and the file's size, with a message naming the file and the tensor.
#include "core/safetensors_header.h"

#include <algorithm>
#include <climits>
#include <optional>
#include <set>

namespace zt::safetensors_detail {
namespace {

std::string json_type_name(const OrderedJson& value) {
  if (value.is_number_unsigned()) return "non-negative integer";
  if (value.is_number_integer()) return "negative integer";
  if (value.is_number_float()) return "number with a fraction or exponent";
  return value.type_name();
}

// Parses the header text, rejecting a key repeated within any one object: nlohmann would keep
// only one of them silently, and two tensors with one name is a corrupt file.
OrderedJson parse_header_json(const std::string& path, const std::string& text) {
  std::vector<std::set<std::string>> keys_per_open_object;
  std::string duplicate_key;
  auto reject_duplicates = [&](int depth, nlohmann::json::parse_event_t event,
                               OrderedJson& parsed) {
    using Event = nlohmann::json::parse_event_t;
    // Printing or comparing JSON recurses once per level: a header nested thousands deep would
    // overflow the stack in an error message. A valid header nests 3 deep (root, tensor, shape).
    if ((event == Event::object_start || event == Event::array_start) &&
        depth >= kMaxHeaderNesting) {
      fail(path, fmt::format("header nests deeper than {} levels; a safetensors header needs 3",
                             kMaxHeaderNesting));
    }
    if (event == Event::object_start) keys_per_open_object.emplace_back();
    if (event == Event::object_end) keys_per_open_object.pop_back();
    if (event == Event::key &&
        !keys_per_open_object.back().insert(parsed.get<std::string>()).second &&
        duplicate_key.empty()) {
      duplicate_key = parsed.get<std::string>();
    }
    return true;
  };
  OrderedJson header;
  try {
    header = OrderedJson::parse(text, reject_duplicates);
  } catch (const nlohmann::json::exception& error) {
    fail(path, fmt::format("header is not valid JSON: {}", error.what()));
  }
  if (!duplicate_key.empty()) {
    fail(path, fmt::format("header has the key '{}' twice in one object", duplicate_key));
  }
  if (!header.is_object()) {
    fail(path, fmt::format("header is a JSON {}, expected an object", header.type_name()));
  }
  return header;
}

SafetensorsMetadata parse_metadata(const std::string& path, const OrderedJson& value) {
  if (!value.is_object()) {
    fail(path,
         fmt::format("__metadata__ is a {}, expected an object of strings", json_type_name(value)));
  }
  SafetensorsMetadata metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      fail(path,
           fmt::format("__metadata__ '{}' is a {}, expected a string", key, json_type_name(item)));
    }
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

// Product of `shape` times the element size, or nullopt if it does not fit in 64 bits.
std::optional<uint64_t> checked_byte_count(const Shape& shape, size_t element_bytes) {
  uint64_t bytes = element_bytes;
  for (int64_t size : shape) {
    if (__builtin_mul_overflow(bytes, uint64_t(size), &bytes)) return std::nullopt;
  }
  return bytes;
}

// The entry's object has exactly the fields dtype, shape and data_offsets.
void check_entry_fields(const std::string& path, const std::string& name,
                        const OrderedJson& value) {
  if (!value.is_object()) {
    fail_tensor(path, name,
                fmt::format("entry is a {}, expected an object with dtype, shape and "
                            "data_offsets",
                            json_type_name(value)));
  }
  for (const auto& [key, item] : value.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      fail_tensor(path, name,
                  fmt::format("unexpected field '{}' (expected dtype, shape, data_offsets)", key));
    }
  }
  for (const char* required : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(required)) fail_tensor(path, name, fmt::format("missing '{}'", required));
  }
}

DType parse_entry_dtype(const std::string& path, const std::string& name,
                        const OrderedJson& value) {
  const OrderedJson& dtype_json = value["dtype"];
  if (!dtype_json.is_string()) {
    fail_tensor(path, name,
                fmt::format("dtype is a {}, expected a string", json_type_name(dtype_json)));
  }
  std::string dtype_text = dtype_json.get<std::string>();
  std::optional<DType> dtype = dtype_from_safetensors_name(dtype_text);
  if (!dtype) {
    fail_tensor(path, name,
                fmt::format("unsupported dtype '{}' (expected one of {})", dtype_text,
                            supported_dtype_names()));
  }
  return *dtype;
}

Shape parse_entry_shape(const std::string& path, const std::string& name,
                        const OrderedJson& value) {
  Shape shape;
  const OrderedJson& shape_json = value["shape"];
  if (!shape_json.is_array()) {
    fail_tensor(path, name,
                fmt::format("shape is a {}, expected an array", json_type_name(shape_json)));
  }
  for (const OrderedJson& size : shape_json) {
    if (!size.is_number_unsigned()) {
      fail_tensor(path, name,
                  fmt::format("shape {} holds a {}, expected non-negative integers",
                              shape_json.dump(), json_type_name(size)));
    }
    uint64_t size_value = size.get<uint64_t>();
    if (size_value > uint64_t(INT64_MAX)) {
      fail_tensor(path, name, fmt::format("shape {} has a size past 2^63", shape_json.dump()));
    }
    shape.push_back(int64_t(size_value));
  }
  return shape;
}

void parse_entry_offsets(const std::string& path, const std::string& name, const OrderedJson& value,
                         TensorEntry& entry) {
  const OrderedJson& offsets_json = value["data_offsets"];
  if (!offsets_json.is_array() || offsets_json.size() != 2 ||
      !offsets_json[0].is_number_unsigned() || !offsets_json[1].is_number_unsigned()) {
    fail_tensor(path, name,
                fmt::format("data_offsets is {}, expected [begin, end] of non-negative integers",
                            offsets_json.dump()));
  }
  entry.begin = offsets_json[0].get<uint64_t>();
  entry.end = offsets_json[1].get<uint64_t>();
  if (entry.begin > entry.end) {
    fail_tensor(path, name,
                fmt::format("data_offsets [{}, {}] end before they begin", entry.begin, entry.end));
  }
}

// The shape's bytes must be countable, its strides must fit in int64, and the offsets must hold
// exactly those bytes inside the data region.
void check_entry_sizes(const std::string& path, const TensorEntry& entry,
                       uint64_t data_region_bytes) {
  const std::string& name = entry.name;
  std::string dtype_text(safetensors_dtype_name(entry.dtype));
  std::string shape_text = shape_str(entry.shape);
  std::optional<uint64_t> needed_bytes = checked_byte_count(entry.shape, dtype_size(entry.dtype));
  if (!needed_bytes) {
    fail_tensor(path, name,
                fmt::format("shape {} of {} needs more than 2^64 bytes", shape_text, dtype_text));
  }
  // Strides are products of the later sizes (zero counted as one), so even an empty tensor such
  // as [0, 2^40, 2^40] must have them fit in int64 to be laid out at all.
  Shape stride_shape = entry.shape;
  for (int64_t& size : stride_shape) size = std::max<int64_t>(size, 1);
  std::optional<uint64_t> stride_bytes = checked_byte_count(stride_shape, dtype_size(entry.dtype));
  if (!stride_bytes || *stride_bytes > uint64_t(INT64_MAX)) {
    fail_tensor(path, name,
                fmt::format("shape {} of {} cannot be laid out: its nonzero sizes need more than "
                            "2^63 bytes",
                            shape_text, dtype_text));
  }
  uint64_t held_bytes = entry.end - entry.begin;
  if (held_bytes != *needed_bytes) {
    fail_tensor(
        path, name,
        fmt::format("data_offsets [{}, {}] hold {} bytes, shape {} of {} needs {}", entry.begin,
                    entry.end, held_bytes, shape_text, dtype_text, *needed_bytes));
  }
  if (entry.end > data_region_bytes) {
    fail_tensor(path, name,
                fmt::format("data_offsets [{}, {}] pass the end of the data region, which "
                            "holds {} bytes",
                            entry.begin, entry.end, data_region_bytes));
  }
}

TensorEntry parse_entry(const std::string& path, const std::string& name, const OrderedJson& value,
                        uint64_t data_region_bytes) {
  check_entry_fields(path, name, value);
  TensorEntry entry{.name = name};
  entry.dtype = parse_entry_dtype(path, name, value);
  entry.shape = parse_entry_shape(path, name, value);
  parse_entry_offsets(path, name, value, entry);
  check_entry_sizes(path, entry, data_region_bytes);
  return entry;
}

// The data region must be tiled exactly: sorted by offset, each tensor starts where the
// previous one ended, the first at 0 and the last ending at the end of the file. Returns the
// entries in that (file) order.
std::vector<TensorEntry> check_data_coverage(const std::string& path,
                                             std::vector<TensorEntry> entries,
                                             uint64_t data_region_bytes) {
  std::stable_sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered_until = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry& entry : entries) {
    if (entry.begin < covered_until) {
      fail_tensor(path, entry.name,
                  fmt::format("data_offsets [{}, {}] overlap tensor '{}' at [{}, {}]", entry.begin,
                              entry.end, previous->name, previous->begin, previous->end));
    }
    if (entry.begin > covered_until) {
      fail_tensor(path, entry.name,
                  fmt::format("data_offsets [{}, {}] leave bytes [{}, {}) of the data region "
                              "unused; tensors must be back to back",
                              entry.begin, entry.end, covered_until, entry.begin));
    }
    covered_until = entry.end;
    previous = &entry;
  }
  if (covered_until != data_region_bytes) {
    fail(path, fmt::format("tensors cover {} bytes of data but {} follow the header: {} "
                           "trailing bytes belong to no tensor",
                           covered_until, data_region_bytes, data_region_bytes - covered_until));
  }
  return entries;
}

}  // namespace

ParsedHeader parse_safetensors_header(const std::string& path, const std::string& text,
                                      uint64_t data_region_bytes) {
  OrderedJson header = parse_header_json(path, text);
  ParsedHeader parsed;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      parsed.metadata = parse_metadata(path, value);
    } else {
      parsed.entries.push_back(parse_entry(path, name, value, data_region_bytes));
    }
  }
  parsed.entries = check_data_coverage(path, std::move(parsed.entries), data_region_bytes);
  return parsed;
}

}  // namespace zt::safetensors_detail
