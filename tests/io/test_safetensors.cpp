// safetensors: bit-exact round trips for every dtype and any strides, the reference layout
// (padded header, back-to-back data), atomic replacement, and a table of malformed files that
// must each be rejected with one runtime_error naming the file.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/half.h"
#include "core/ops/view.h"
#include "core/safetensors.h"
#include "tests/io/temp_dir.h"

using namespace zt;
using zt::testing::read_bytes;
using zt::testing::TempDir;
using zt::testing::write_bytes;

namespace {

// A contiguous tensor whose bytes are a fixed pseudo-random pattern: for floating dtypes this
// includes NaNs with payloads, infinities and subnormals, which only a byte copy preserves.
Tensor patterned(const Shape& shape, DType dtype, uint32_t seed) {
  Tensor tensor = empty(shape, {.dtype = dtype});
  auto* bytes = static_cast<uint8_t*>(tensor.raw_data());
  uint32_t state = seed * 2654435761u + 1;
  for (size_t i = 0; i < tensor.nbytes(); ++i) {
    state = state * 1664525u + 1013904223u;
    bytes[i] = uint8_t(state >> 24);
  }
  return tensor;
}

std::string raw_bytes(const Tensor& contiguous_tensor) {
  return std::string(static_cast<const char*>(contiguous_tensor.raw_data()),
                     contiguous_tensor.nbytes());
}

// A safetensors file from its parts; header_length_field overrides the 8-byte prefix.
std::string safetensors_bytes(const std::string& header, const std::string& data,
                              std::optional<uint64_t> header_length_field = std::nullopt) {
  uint64_t length = header_length_field.value_or(header.size());
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &length, 8);
  return bytes + header + data;
}

std::string error_message_of_load(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("safetensors round trip is bit-exact for every dtype, in save order") {
  TempDir dir;
  std::string path = dir.file("all_dtypes.safetensors");
  NamedTensors saved;
  uint32_t seed = 1;
  for (DType dtype : kAllDTypes) {
    // Names in reverse alphabetical order, to see that file order (not sorting) is kept.
    saved.emplace_back(std::string("z_") + std::string(dtype_name(dtype)),
                       patterned({3, 5, 2}, dtype, seed++));
  }
  saved.emplace_back("scalar", patterned({}, DType::f64, 99));
  saved.emplace_back("empty", empty({0, 4}, {.dtype = DType::f32}));
  save_safetensors(path, saved);

  SafetensorsContents loaded = load_safetensors(path);
  REQUIRE(loaded.tensors.size() == saved.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    const auto& [name, tensor] = loaded.tensors[i];
    CAPTURE(name);
    CHECK(name == saved[i].first);
    CHECK(tensor.dtype() == saved[i].second.dtype());
    CHECK(tensor.sizes() == saved[i].second.sizes());
    CHECK(tensor.is_contiguous());
    CHECK(tensor.device().is_cpu());
    CHECK(raw_bytes(tensor) == raw_bytes(saved[i].second));
  }
  CHECK(loaded.metadata.empty());
}

TEST_CASE("safetensors keeps f16 and bf16 NaN payloads, infinities and subnormals exactly") {
  TempDir dir;
  std::string path = dir.file("halves.safetensors");
  const uint16_t special_bits[] = {0x7e01, 0xfc00, 0x7c00, 0x0001, 0x8001, 0x7fff, 0x0000, 0x8000};
  Tensor halves = empty({8}, {.dtype = DType::f16});
  Tensor brains = empty({8}, {.dtype = DType::bf16});
  for (size_t i = 0; i < 8; ++i) {
    halves.data_ptr<f16>()[i] = f16::from_bits(special_bits[i]);
    brains.data_ptr<bf16>()[i] = bf16::from_bits(special_bits[i]);
  }
  save_safetensors(path, {{"halves", halves}, {"brains", brains}});
  SafetensorsContents loaded = load_safetensors(path);
  for (size_t i = 0; i < 8; ++i) {
    CHECK(loaded.at("halves").data_ptr<f16>()[i].bits == special_bits[i]);
    CHECK(loaded.at("brains").data_ptr<bf16>()[i].bits == special_bits[i]);
  }
}

TEST_CASE("safetensors writes non-contiguous tensors in row-major order") {
  TempDir dir;
  std::string path = dir.file("views.safetensors");
  Tensor base = patterned({4, 6}, DType::f32, 7);
  Tensor transposed = ops::transpose(base, 0, 1);                   // [6, 4]
  Tensor strided = ops::slice(base, 1, 1, 6, 2);                    // [4, 3], column step 2
  Tensor broadcast = ops::expand(ops::select(base, 0, 2), {3, 6});  // stride 0 rows
  Tensor halves_transposed = ops::transpose(patterned({3, 5}, DType::bf16, 8), 0, 1);
  REQUIRE_FALSE(transposed.is_contiguous());
  REQUIRE_FALSE(strided.is_contiguous());
  REQUIRE_FALSE(broadcast.is_contiguous());
  save_safetensors(path, {{"transposed", transposed},
                          {"strided", strided},
                          {"broadcast", broadcast},
                          {"halves_transposed", halves_transposed}});

  SafetensorsContents loaded = load_safetensors(path);
  for (const char* name : {"transposed", "strided", "broadcast"}) {
    CAPTURE(name);
    const Tensor& original = name == std::string("transposed") ? transposed
                             : name == std::string("strided")  ? strided
                                                               : broadcast;
    CHECK(loaded.at(name).sizes() == original.sizes());
    // Bit patterns include NaNs, so compare bytes of f32 rather than values.
    std::vector<float> expected;
    for (int64_t i = 0; i < original.size(0); ++i) {
      for (int64_t j = 0; j < original.size(1); ++j) {
        expected.push_back(
            original.data_ptr<float>()[i * original.stride(0) + j * original.stride(1)]);
      }
    }
    CHECK(std::memcmp(loaded.at(name).raw_data(), expected.data(), expected.size() * 4) == 0);
  }
  const Tensor& halves_loaded = loaded.at("halves_transposed");
  for (int64_t i = 0; i < 5; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      CHECK(halves_loaded.data_ptr<bf16>()[i * 3 + j].bits ==
            halves_transposed
                .data_ptr<bf16>()[i * halves_transposed.stride(0) + j * halves_transposed.stride(1)]
                .bits);
    }
  }
}

TEST_CASE("safetensors file is a space-padded header in save order, then data back to back") {
  TempDir dir;
  std::string path = dir.file("layout.safetensors");
  Tensor weights = from_values({1.0, 2.0}, {2}, {.dtype = DType::f32});
  Tensor counts = from_int64(std::vector<int64_t>{7}, {1});
  save_safetensors(path, {{"w", weights}, {"n", counts}}, {{"format", "pt"}});

  std::string header_json =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("n":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}})";
  std::string padded_header = header_json + std::string((8 - header_json.size() % 8) % 8, ' ');
  float weight_values[2] = {1.0f, 2.0f};
  int64_t count_value = 7;
  std::string data(reinterpret_cast<const char*>(weight_values), 8);
  data.append(reinterpret_cast<const char*>(&count_value), 8);
  std::string file = read_bytes(path);
  CHECK(padded_header.size() % 8 == 0);
  CHECK(file == safetensors_bytes(padded_header, data));
}

TEST_CASE("safetensors loads a file written by the reference implementation") {
  // Bytes written by the reference Python package (safetensors 0.8.0, numpy frontend), which
  // orders tensors by alignment then name: header order is not alphabetical or save order.
  std::string header =
      R"({"__metadata__":{"format":"pt"},"n":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
      R"("h":{"dtype":"F16","shape":[2,1],"data_offsets":[16,20]},)"
      R"("u":{"dtype":"U8","shape":[1],"data_offsets":[20,21]}})";
  header.append(256 - header.size(), ' ');
  const uint8_t data[] = {0x07, 0,    0,    0,    0,    0,    0,    0,    0x00, 0x00, 0x80,
                          0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x38, 0xff, 0x7b, 0xff};
  TempDir dir;
  std::string path = dir.file("reference.safetensors");
  write_bytes(path, safetensors_bytes(
                        header, std::string(reinterpret_cast<const char*>(data), sizeof data)));
  SafetensorsContents loaded = load_safetensors(path);
  REQUIRE(loaded.tensors.size() == 4);
  CHECK(loaded.tensors[0].first == "n");
  CHECK(loaded.tensors[3].first == "u");
  CHECK(loaded.metadata == SafetensorsMetadata{{"format", "pt"}});
  CHECK(loaded.at("n").to_vector() == std::vector<double>{7});
  CHECK(loaded.at("w").to_vector() == std::vector<double>{1.0, -2.0});
  CHECK(loaded.at("h").sizes() == Shape{2, 1});
  CHECK(loaded.at("h").to_vector() == std::vector<double>{0.5, 65504.0});
  CHECK(loaded.at("u").to_vector() == std::vector<double>{255});
}

TEST_CASE("safetensors metadata round trips and loaded tensors take the caller's memory tag") {
  TempDir dir;
  std::string path = dir.file("meta.safetensors");
  SafetensorsMetadata metadata = {{"format", "pt"}, {"step", "1200"}, {"note", "ünïcode ✓"}};
  save_safetensors(path, {{"layer.0.weight", patterned({2, 2}, DType::f32, 3)}}, metadata);
  MemoryTagGuard param_tag(MemoryTag::param);
  SafetensorsContents loaded = load_safetensors(path);
  CHECK(loaded.metadata == metadata);
  CHECK(loaded.at("layer.0.weight").storage()->tag() == MemoryTag::param);
  CHECK(loaded.contains("layer.0.weight"));
  CHECK_FALSE(loaded.contains("layer.1.weight"));
  CHECK_THROWS_AS(loaded.at("layer.1.weight"), std::out_of_range);
}

TEST_CASE("safetensors save replaces an existing file and leaves no temporary files") {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  save_safetensors(path, {{"a", patterned({100}, DType::f32, 1)}});
  save_safetensors(path, {{"b", patterned({3}, DType::u8, 2)}});
  SafetensorsContents loaded = load_safetensors(path);
  REQUIRE(loaded.tensors.size() == 1);
  CHECK(loaded.tensors[0].first == "b");
  size_t entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    CHECK(entry.path().filename() == "model.safetensors");
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("safetensors save rejects duplicate and reserved names and leaves the old file") {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  save_safetensors(path, {{"kept", patterned({2}, DType::f32, 1)}});
  Tensor value = patterned({2}, DType::f32, 2);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"x", value}, {"x", value}}),
                       doctest::Contains("tensor 'x': name appears twice"), std::runtime_error);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"__metadata__", value}}),
                       doctest::Contains("reserved"), std::runtime_error);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"undefined", Tensor()}}),
                       doctest::Contains("undefined"), std::runtime_error);
  CHECK(load_safetensors(path).contains("kept"));
}

TEST_CASE("safetensors loader names the file, tensor and sizes in a shape mismatch") {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  write_bytes(path, safetensors_bytes(
                        R"({"fc1.weight":{"dtype":"F32","shape":[10,20],"data_offsets":[0,400]}})",
                        std::string(400, '\0')));
  CHECK(error_message_of_load(path) ==
        path +
            ": tensor 'fc1.weight': data_offsets [0, 400] hold 400 bytes, shape [10, 20] of "
            "F32 needs 800");
}

TEST_CASE("safetensors loader rejects each malformed file with a runtime_error naming it") {
  struct MalformedCase {
    std::string what;
    std::string bytes;
    const char* expected_fragment;
  };
  const std::string one_f32 = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const std::string four_bytes(4, '\x01');
  auto one_tensor = [](const std::string& fields) { return R"({"a":{)" + fields + "}}"; };
  const std::vector<MalformedCase> cases = {
      {"empty file", "", "too short"},
      {"five bytes", std::string(5, '\0'), "too short"},
      {"header length past the end", safetensors_bytes(one_f32, four_bytes, 1000),
       "header length 1000 is larger than"},
      {"absurd header length", safetensors_bytes(one_f32, four_bytes, uint64_t(1) << 40),
       "past the limit"},
      {"invalid JSON", safetensors_bytes(R"({"a":{"dtype":)", ""), "not valid JSON"},
      {"invalid UTF-8 in a name", safetensors_bytes("{\"\xff\xfe\":{}}", ""), "not valid JSON"},
      {"header is an array", safetensors_bytes("[1,2]", ""), "expected an object"},
      {"entry is not an object", safetensors_bytes(R"({"a":3})", ""), "entry is a"},
      {"unknown dtype",
       safetensors_bytes(one_tensor(R"("dtype":"F8","shape":[1],"data_offsets":[0,1])"), "x"),
       "unsupported dtype 'F8'"},
      {"dtype not a string",
       safetensors_bytes(one_tensor(R"("dtype":4,"shape":[1],"data_offsets":[0,4])"), four_bytes),
       "dtype is a"},
      {"missing shape",
       safetensors_bytes(one_tensor(R"("dtype":"F32","data_offsets":[0,4])"), four_bytes),
       "missing 'shape'"},
      {"extra field",
       safetensors_bytes(one_tensor(R"("dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1)"),
                         four_bytes),
       "unexpected field 'x'"},
      {"negative size",
       safetensors_bytes(one_tensor(R"("dtype":"F32","shape":[-1],"data_offsets":[0,4])"),
                         four_bytes),
       "negative integer"},
      {"fractional size",
       safetensors_bytes(one_tensor(R"("dtype":"F32","shape":[1.5],"data_offsets":[0,4])"),
                         four_bytes),
       "expected non-negative integers"},
      {"shape product overflows",
       safetensors_bytes(
           one_tensor(R"("dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4])"),
           four_bytes),
       "needs more than 2^64 bytes"},
      {"data_offsets disagree with the shape",
       safetensors_bytes(one_tensor(R"("dtype":"F32","shape":[2],"data_offsets":[0,4])"),
                         four_bytes),
       "hold 4 bytes, shape [2] of F32 needs 8"},
      {"data_offsets of one number",
       safetensors_bytes(one_tensor(R"("dtype":"F32","shape":[1],"data_offsets":[4])"), four_bytes),
       "expected [begin, end]"},
      {"data_offsets reversed",
       safetensors_bytes(one_tensor(R"("dtype":"U8","shape":[0],"data_offsets":[4,0])"),
                         four_bytes),
       "end before they begin"},
      {"offsets past the end of the file (truncated data)",
       safetensors_bytes(one_tensor(R"("dtype":"F32","shape":[2],"data_offsets":[0,8])"),
                         four_bytes),
       "pass the end of the data region"},
      {"overlapping ranges",
       safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         std::string(8, '\0')),
       "overlap tensor 'a'"},
      {"gap between tensors",
       safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         std::string(12, '\0')),
       "leave bytes [4, 8)"},
      {"first tensor not at offset 0",
       safetensors_bytes(one_tensor(R"("dtype":"F32","shape":[1],"data_offsets":[4,8])"),
                         std::string(8, '\0')),
       "leave bytes [0, 4)"},
      {"trailing bytes after the last tensor", safetensors_bytes(one_f32, std::string(9, '\0')),
       "5 trailing bytes"},
      {"duplicate names",
       safetensors_bytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                         R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                         "xy"),
       "key 'a' twice"},
      {"metadata value not a string",
       safetensors_bytes(R"({"__metadata__":{"step":3},"a":{"dtype":"U8","shape":[1],)"
                         R"("data_offsets":[0,1]}})",
                         "x"),
       "__metadata__ 'step' is a"},
  };
  REQUIRE(cases.size() >= 12);
  TempDir dir;
  for (size_t i = 0; i < cases.size(); ++i) {
    const MalformedCase& malformed = cases[i];
    CAPTURE(malformed.what);
    std::string path = dir.file("malformed_" + std::to_string(i) + ".safetensors");
    write_bytes(path, malformed.bytes);
    std::string message = error_message_of_load(path);
    CHECK(message.rfind(path + ": ", 0) == 0);
    CHECK(message.find(malformed.expected_fragment) != std::string::npos);
    CHECK(message.find('\n') == std::string::npos);
  }
}

TEST_CASE("safetensors loader rejects every truncated prefix of a valid file") {
  TempDir dir;
  std::string valid_path = dir.file("valid.safetensors");
  save_safetensors(valid_path,
                   {{"a", patterned({3, 3}, DType::f32, 1)}, {"b", patterned({5}, DType::bf16, 2)}},
                   {{"format", "pt"}});
  std::string valid = read_bytes(valid_path);
  REQUIRE(load_safetensors(valid_path).tensors.size() == 2);
  std::string truncated_path = dir.file("truncated.safetensors");
  for (size_t length = 0; length < valid.size(); ++length) {
    CAPTURE(length);
    write_bytes(truncated_path, valid.substr(0, length));
    CHECK(error_message_of_load(truncated_path).rfind(truncated_path + ": ", 0) == 0);
  }
}

TEST_CASE("safetensors loader survives every single-byte corruption of the header") {
  // Each corruption must either load (e.g. a changed metadata character) or throw
  // runtime_error; never crash, hang or read out of bounds (the asan build checks the latter).
  TempDir dir;
  std::string valid_path = dir.file("valid.safetensors");
  save_safetensors(valid_path,
                   {{"a", patterned({2, 2}, DType::f32, 1)}, {"b", patterned({3}, DType::u8, 2)}});
  std::string valid = read_bytes(valid_path);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, valid.data(), 8);
  std::string corrupt_path = dir.file("corrupt.safetensors");
  for (size_t position = 0; position < 8 + header_bytes; ++position) {
    for (char replacement : {'\0', '9', '"', '}', '-'}) {
      std::string corrupt = valid;
      corrupt[position] = replacement;
      write_bytes(corrupt_path, corrupt);
      try {
        load_safetensors(corrupt_path);
      } catch (const std::runtime_error&) {
      }
    }
  }
}
