// PNG writer: the test decodes the writer's own output independently (chunk walk, CRC check
// with zlib's crc32, IDAT inflate) and compares pixels; plus the tensor overload, upscale, the
// atomic file write and argument checks.
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/ops/view.h"
#include "data/png_writer.h"
#include "tests/io/temp_dir.h"

using namespace zt;
using zt::data::encode_png;
using zt::data::upscale;
using zt::data::write_png;
using zt::testing::TempDir;

namespace {

struct DecodedPng {
  uint32_t width = 0;
  uint32_t height = 0;
  uint8_t bit_depth = 0;
  uint8_t color_type = 0;
  std::vector<std::string> chunk_types;  // in file order
  std::vector<uint8_t> pixels;           // filter bytes removed
};

uint32_t read_u32(const uint8_t* bytes) {
  return uint32_t(bytes[0]) << 24 | uint32_t(bytes[1]) << 16 | uint32_t(bytes[2]) << 8 |
         uint32_t(bytes[3]);
}

// Decodes the subset of PNG the writer emits, checking every structural rule on the way.
DecodedPng decode_png(const std::vector<uint8_t>& png) {
  DecodedPng decoded;
  const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  REQUIRE(png.size() >= 8);
  REQUIRE(std::memcmp(png.data(), signature, 8) == 0);
  std::vector<uint8_t> idat_stream;
  size_t position = 8;
  while (position < png.size()) {
    REQUIRE(position + 12 <= png.size());
    uint32_t length = read_u32(&png[position]);
    REQUIRE(position + 12 + length <= png.size());
    std::string type(reinterpret_cast<const char*>(&png[position + 4]), 4);
    const uint8_t* data = &png[position + 8];
    uint32_t stored_crc = read_u32(data + length);
    uint32_t computed_crc = uint32_t(crc32(crc32(0L, Z_NULL, 0), &png[position + 4], length + 4));
    CAPTURE(type);
    CHECK(stored_crc == computed_crc);
    decoded.chunk_types.push_back(type);
    if (type == "IHDR") {
      REQUIRE(length == 13);
      decoded.width = read_u32(data);
      decoded.height = read_u32(data + 4);
      decoded.bit_depth = data[8];
      decoded.color_type = data[9];
      CHECK(data[10] == 0);  // deflate
      CHECK(data[11] == 0);  // adaptive filtering
      CHECK(data[12] == 0);  // not interlaced
    } else if (type == "IDAT") {
      idat_stream.insert(idat_stream.end(), data, data + length);
    } else {
      CHECK(type == "IEND");
      CHECK(length == 0);
    }
    position += 12 + length;
  }
  CHECK(position == png.size());
  REQUIRE(decoded.bit_depth == 8);
  size_t channels = decoded.color_type == 2 ? 3 : 1;
  size_t row_bytes = size_t(decoded.width) * channels;
  uLongf raw_bytes = uLongf((row_bytes + 1) * decoded.height);
  std::vector<uint8_t> raw(raw_bytes + 1);  // one spare byte: a longer stream must not fit
  uLongf inflated_bytes = uLongf(raw.size());
  REQUIRE(uncompress(raw.data(), &inflated_bytes, idat_stream.data(), uLong(idat_stream.size())) ==
          Z_OK);
  REQUIRE(inflated_bytes == raw_bytes);
  for (uint32_t y = 0; y < decoded.height; ++y) {
    const uint8_t* row = &raw[y * (row_bytes + 1)];
    CHECK(row[0] == 0);  // filter type None
    decoded.pixels.insert(decoded.pixels.end(), row + 1, row + 1 + row_bytes);
  }
  return decoded;
}

std::vector<uint8_t> noise(size_t count, uint32_t seed) {
  std::vector<uint8_t> values(count);
  for (uint8_t& value : values) {
    seed = seed * 1664525u + 1013904223u;
    value = uint8_t(seed >> 24);
  }
  return values;
}

}  // namespace

TEST_CASE("png of a grayscale image decodes to the same pixels with valid CRCs") {
  const int64_t width = 7, height = 5;
  std::vector<uint8_t> pixels(width * height);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t(i * 7);
  DecodedPng decoded = decode_png(encode_png(pixels, width, height, 1));
  CHECK(decoded.width == width);
  CHECK(decoded.height == height);
  CHECK(decoded.color_type == 0);
  CHECK(decoded.chunk_types == std::vector<std::string>{"IHDR", "IDAT", "IEND"});
  CHECK(decoded.pixels == pixels);
}

TEST_CASE("png of an RGB image decodes to the same pixels with valid CRCs") {
  const int64_t width = 3, height = 4;
  std::vector<uint8_t> pixels = noise(size_t(width * height * 3), 11);
  DecodedPng decoded = decode_png(encode_png(pixels, width, height, 3));
  CHECK(decoded.color_type == 2);
  CHECK(decoded.width == width);
  CHECK(decoded.height == height);
  CHECK(decoded.pixels == pixels);
}

TEST_CASE("png of an incompressible large image spans several IDAT chunks and decodes") {
  const int64_t width = 1000, height = 700;
  std::vector<uint8_t> pixels = noise(size_t(width * height * 3), 5);
  DecodedPng decoded = decode_png(encode_png(pixels, width, height, 3));
  CHECK(std::count(decoded.chunk_types.begin(), decoded.chunk_types.end(), "IDAT") > 1);
  CHECK(decoded.pixels == pixels);
}

TEST_CASE("write_png writes the encoded bytes atomically and leaves no temporary files") {
  TempDir dir;
  std::string path = dir.file("sample.png");
  std::vector<uint8_t> pixels = noise(6 * 4, 3);
  write_png(path, pixels, 6, 4, 1);
  write_png(path, pixels, 6, 4, 1);  // replacing an existing file
  std::string file = zt::testing::read_bytes(path);
  std::vector<uint8_t> expected = encode_png(pixels, 6, 4, 1);
  CHECK(std::vector<uint8_t>(file.begin(), file.end()) == expected);
  size_t entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    CHECK(entry.path().filename() == "sample.png");
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("write_png of a strided u8 tensor writes its pixels in row-major order") {
  TempDir dir;
  std::string path = dir.file("tensor.png");
  std::vector<double> values(4 * 3);
  for (size_t i = 0; i < values.size(); ++i) values[i] = double(i * 20);
  Tensor stored = from_values(values, {4, 3}, {.dtype = DType::u8});  // [W=4, H=3] stored
  Tensor image = ops::transpose(stored, 0, 1);                        // [H=3, W=4] view
  write_png(path, image);
  std::string file = zt::testing::read_bytes(path);
  DecodedPng decoded = decode_png(std::vector<uint8_t>(file.begin(), file.end()));
  CHECK(decoded.width == 4);
  CHECK(decoded.height == 3);
  for (int64_t y = 0; y < 3; ++y) {
    for (int64_t x = 0; x < 4; ++x) CHECK(decoded.pixels[size_t(y * 4 + x)] == (x * 3 + y) * 20);
  }
  CHECK_THROWS_AS(write_png(path, zeros({2, 2}, {.dtype = DType::f32})), std::invalid_argument);
  CHECK_THROWS_AS(write_png(path, zeros({2, 2, 2}, {.dtype = DType::u8})), std::invalid_argument);
}

TEST_CASE("upscale repeats each pixel factor times in both directions") {
  const std::vector<uint8_t> rgb = {1, 2, 3, 4, 5, 6};  // 2x1 RGB
  std::vector<uint8_t> big = upscale(rgb, 2, 1, 3, 2);
  CHECK(big == std::vector<uint8_t>{1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6,  //
                                    1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6});
  CHECK(upscale(rgb, 2, 1, 3, 1) == rgb);
  CHECK_THROWS_AS(upscale(rgb, 2, 1, 3, 0), std::invalid_argument);
}

TEST_CASE("png encoder rejects bad channel counts, sizes and pixel counts") {
  std::vector<uint8_t> pixels(12);
  CHECK_THROWS_AS(encode_png(pixels, 3, 2, 2), std::invalid_argument);
  CHECK_THROWS_AS(encode_png(pixels, 0, 2, 1), std::invalid_argument);
  CHECK_THROWS_AS(encode_png(pixels, 3, 3, 1), std::invalid_argument);
  CHECK_THROWS_AS(encode_png(pixels, int64_t(1) << 31, 1, 1), std::invalid_argument);
}
