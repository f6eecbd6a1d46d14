// The storage-only dtypes of quantized values: i8 fills, casts (truncating and saturating like
// the other integers), moves through safetensors; i4x2 packs two 4-bit values a byte, fills
// both nibbles and copies only to i4x2.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include <unistd.h>

#include "core/factory.h"
#include "core/safetensors.h"

using namespace zt;

TEST_CASE("i8: one byte an element, named, filled and read back") {
  CHECK(dtype_size(DType::i8) == 1);
  CHECK(dtype_name(DType::i8) == "i8");
  CHECK(is_quantized(DType::i8));
  CHECK_FALSE(is_floating(DType::i8));
  CHECK(full({3}, -5.0, {.dtype = DType::i8}).to_vector() == std::vector<double>(3, -5.0));
  CHECK(zeros({2}, {.dtype = DType::i8}).data_ptr<int8_t>()[1] == 0);
}

TEST_CASE("i8 casts from f32 truncate and saturate, and back to f32 exactly") {
  Tensor values = from_values({-300.0, -128.9, -1.5, 0.7, 126.9, 1000.0}, {6});
  Tensor codes = values.to(DType::i8);
  CHECK(codes.dtype() == DType::i8);
  CHECK(codes.to_vector() == std::vector<double>{-128, -128, -1, 0, 126, 127});
  CHECK(codes.to(DType::f32).to_vector() == std::vector<double>{-128, -128, -1, 0, 126, 127});
  CHECK(codes.to(DType::i32).to_vector() == codes.to_vector());
}

TEST_CASE(
    "i4x2: a byte holds two values; fill packs both nibbles; casts other than to i4x2 are "
    "refused") {
  CHECK(dtype_size(DType::i4x2) == 1);
  CHECK(dtype_name(DType::i4x2) == "i4x2");
  Tensor packed = full({2}, -2.0, {.dtype = DType::i4x2});
  CHECK(static_cast<const uint8_t*>(packed.raw_data())[0] == 0xEE);
  CHECK_THROWS_WITH_AS(full({2}, 9.0, {.dtype = DType::i4x2}),
                       doctest::Contains("i4x2 tensor holds integers in [-8, 7]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(packed.to(DType::f32), doctest::Contains("i4x2 packs two values a byte"),
                       std::invalid_argument);
  Tensor copy = packed.clone();
  CHECK(copy.dtype() == DType::i4x2);
  CHECK(static_cast<const uint8_t*>(copy.raw_data())[1] == 0xEE);
}

TEST_CASE("i8 tensors round-trip through safetensors as I8") {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("zt_i8_" + std::to_string(::getpid()) + ".safetensors");
  Tensor codes = from_values({-128, -1, 0, 127}, {2, 2}, {.dtype = DType::i8});
  save_safetensors(path.string(), {{"codes", codes}});
  SafetensorsContents loaded = load_safetensors(path.string());
  std::filesystem::remove(path);
  CHECK(loaded.at("codes").dtype() == DType::i8);
  CHECK(loaded.at("codes").to_vector() == std::vector<double>{-128, -1, 0, 127});
}
