// IDX reading: plain and gzip files give the same array, every malformed file is rejected with
// an error naming it, load_mnist_split checks shapes, counts and labels, and the real
// Fashion-MNIST test split (Debian's dataset-fashion-mnist) loads when it is installed.
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/factory.h"
#include "data/idx.h"
#include "tests/io/temp_dir.h"
#include "tests/requirements.h"

using namespace zt;
using zt::data::IdxArray;
using zt::data::load_mnist_split;
using zt::data::read_idx;
using zt::testing::TempDir;
using zt::testing::write_bytes;

namespace {

// An IDX file's bytes: magic 00 00 type ndim, big-endian u32 dims, then `values`.
std::string idx_bytes(const std::vector<uint32_t>& dims, const std::string& values,
                      uint8_t type = 0x08) {
  std::string bytes = {'\0', '\0', char(type), char(dims.size())};
  for (uint32_t size : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(char((size >> shift) & 0xff));
  }
  return bytes + values;
}

std::string counting_values(size_t count, uint8_t modulus = 251) {
  std::string values(count, '\0');
  for (size_t i = 0; i < count; ++i) values[i] = char(i % modulus);
  return values;
}

void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  REQUIRE(gzwrite(file, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  REQUIRE(gzclose(file) == Z_OK);
}

std::string gzip_bytes(const TempDir& dir, const std::string& bytes) {
  std::string path = dir.file("scratch.gz");
  write_gzip(path, bytes);
  return zt::testing::read_bytes(path);
}

std::string error_message_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "(no error)";
}

// A synthetic MNIST-style split: `count` images of 28x28 and the given labels.
void write_split(const TempDir& dir, const std::string& split, uint32_t image_count,
                 const std::string& labels, bool compressed) {
  std::string images = idx_bytes({image_count, 28, 28}, counting_values(image_count * 784));
  std::string label_file = idx_bytes({uint32_t(labels.size())}, labels);
  std::string images_name = dir.file(split + "-images-idx3-ubyte");
  std::string labels_name = dir.file(split + "-labels-idx1-ubyte");
  if (compressed) {
    write_gzip(images_name + ".gz", images);
    write_gzip(labels_name + ".gz", label_file);
  } else {
    write_bytes(images_name, images);
    write_bytes(labels_name, label_file);
  }
}

}  // namespace

TEST_CASE("idx reader returns dims and row-major bytes of a plain file") {
  TempDir dir;
  std::string path = dir.file("array-idx2-ubyte");
  write_bytes(path, idx_bytes({3, 70000}, counting_values(210000)));
  IdxArray array = read_idx(path);
  CHECK(array.dims == std::vector<int64_t>{3, 70000});
  REQUIRE(array.values.size() == 210000);
  CHECK(array.values[0] == 0);
  CHECK(array.values[250] == 250);
  CHECK(array.values[209999] == 209999 % 251);
}

TEST_CASE("idx reader reads gzip files, whatever their name says") {
  TempDir dir;
  std::string content = idx_bytes({4, 5}, counting_values(20));
  write_gzip(dir.file("a-idx2-ubyte.gz"), content);
  write_gzip(dir.file("gzip-without-suffix"), content);
  write_bytes(dir.file("plain-with-suffix.gz"), content);
  for (const char* name : {"a-idx2-ubyte.gz", "gzip-without-suffix", "plain-with-suffix.gz"}) {
    CAPTURE(std::string(name));
    IdxArray array = read_idx(dir.file(name));
    CHECK(array.dims == std::vector<int64_t>{4, 5});
    CHECK(std::string(array.values.begin(), array.values.end()) == counting_values(20));
  }
}

TEST_CASE("idx reader rejects each malformed file with a runtime_error naming it") {
  TempDir dir;
  struct MalformedCase {
    std::string what;
    std::string bytes;
    std::string expected_fragment;
  };
  std::string valid = idx_bytes({2, 3}, counting_values(6));
  std::string valid_gzip = gzip_bytes(dir, valid);
  std::string corrupt_gzip = valid_gzip;
  corrupt_gzip[valid_gzip.size() / 2] ^= 0x55;
  corrupt_gzip[valid_gzip.size() / 2 + 1] ^= 0x55;
  const std::vector<MalformedCase> cases = {
      {"empty file", "", "holds 0 bytes, too short for the 4-byte IDX magic"},
      {"three bytes", std::string("\0\0\x08", 3), "holds 3 bytes, too short"},
      {"bad magic", "\x01" + valid.substr(1), "bad magic 01 00 08 02"},
      {"float element type", idx_bytes({2}, std::string(8, '\0'), 0x0D),
       "element type 0x0D (float32) is not supported"},
      {"unknown element type", idx_bytes({2}, "ab", 0x42), "element type 0x42 (not an IDX type)"},
      {"zero dimensions", idx_bytes({}, "x"), "0 dimensions"},
      {"dims cut short", valid.substr(0, 9),
       "2 dimensions need 8 bytes of sizes, the file holds 5"},
      {"truncated data", valid.substr(0, valid.size() - 1),
       "truncated: data holds 5 bytes, dims [2, 3] need 6"},
      {"trailing bytes", valid + "xyz", "trailing bytes: data holds 9 bytes, dims [2, 3] need 6"},
      {"dims larger than the data", idx_bytes({4000000000u, 4000000000u}, "abc"),
       "data holds 3 bytes, dims [4000000000, 4000000000] need 16000000000000000000"},
      {"truncated gzip stream", valid_gzip.substr(0, valid_gzip.size() - 12), "truncated"},
      {"corrupt gzip stream", corrupt_gzip, "gzip"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const MalformedCase& malformed = cases[i];
    CAPTURE(malformed.what);
    std::string path = dir.file("malformed_" + std::to_string(i) + "-idx-ubyte");
    write_bytes(path, malformed.bytes);
    std::string message = error_message_of([&] { read_idx(path); });
    CAPTURE(message);
    CHECK(message.rfind(path + ": ", 0) == 0);
    CHECK(message.find(malformed.expected_fragment) != std::string::npos);
  }
  std::string missing = dir.file("missing-idx1-ubyte");
  CHECK(error_message_of([&] { read_idx(missing); }).rfind(missing + ": cannot open", 0) == 0);
}

TEST_CASE("load_mnist_split gives u8 images [N, 28, 28] and i64 labels, plain or gzip") {
  for (bool compressed : {false, true}) {
    CAPTURE(compressed);
    TempDir dir;
    write_split(dir, "train", 3, std::string("\x07\x00\x09", 3), compressed);
    zt::data::MnistSplit split = load_mnist_split(dir.path().string(), "train");
    CHECK(split.images.sizes() == Shape{3, 28, 28});
    CHECK(split.images.dtype() == DType::u8);
    CHECK(split.labels.sizes() == Shape{3});
    CHECK(split.labels.dtype() == DType::i64);
    CHECK(split.labels.to_vector() == std::vector<double>{7, 0, 9});
    CHECK(split.images.data_ptr<uint8_t>()[784 + 5] == (784 + 5) % 251);
  }
}

TEST_CASE("load_mnist_split rejects wrong dims, mismatched counts, bad labels and missing files") {
  TempDir dir;
  std::string root = dir.path().string();
  std::string images_path = dir.file("t10k-images-idx3-ubyte");
  std::string labels_path = dir.file("t10k-labels-idx1-ubyte");

  write_split(dir, "t10k", 2, std::string("\x01\x02\x03", 3), false);
  CHECK(error_message_of([&] { load_mnist_split(root, "t10k"); }) ==
        labels_path + ": holds 3 labels but " + images_path + " holds 2 images");

  write_split(dir, "t10k", 2, std::string("\x01\x0a", 2), false);
  CHECK(error_message_of([&] { load_mnist_split(root, "t10k"); }) ==
        labels_path + ": label 10 at index 1 is not a class in 0..9");

  write_bytes(images_path, idx_bytes({2, 784}, counting_values(2 * 784)));
  CHECK(error_message_of([&] { load_mnist_split(root, "t10k"); }) ==
        images_path + ": dims [2, 784], expected [N, 28, 28]");

  write_split(dir, "t10k", 2, "ab", false);
  write_bytes(labels_path, idx_bytes({1, 2}, std::string("\x01\x02", 2)));
  CHECK(error_message_of([&] { load_mnist_split(root, "t10k"); }) ==
        labels_path + ": dims [1, 2], expected [N]");

  write_split(dir, "t10k", 0, "", false);
  CHECK(error_message_of([&] { load_mnist_split(root, "t10k"); }) ==
        images_path + ": holds 0 images, expected at least 1");

  std::string missing_message = error_message_of([&] { load_mnist_split(root, "train"); });
  CHECK(missing_message.find("train-images-idx3-ubyte.gz") != std::string::npos);
  CHECK_THROWS_AS(load_mnist_split(root, "validation"), std::invalid_argument);
}

TEST_CASE("load_mnist_split reads the real Fashion-MNIST t10k split: 10000 images, 1000 a class" *
          ZT_NEEDS_FASHION_MNIST) {
  const std::string fashion_dir = zt::testing::kFashionMnistDir;
  zt::data::MnistSplit split = load_mnist_split(fashion_dir, "t10k");
  CHECK(split.images.sizes() == Shape{10000, 28, 28});
  REQUIRE(split.labels.sizes() == Shape{10000});
  std::array<int, 10> per_class{};
  const int64_t* labels = split.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < 10000; ++i) per_class[size_t(labels[i])]++;
  for (int count : per_class) CHECK(count == 1000);
  // Real images, not blank: pixels span the byte range and most are background.
  const uint8_t* pixels = split.images.data_ptr<uint8_t>();
  int64_t zero_pixels = 0;
  uint8_t brightest = 0;
  for (int64_t i = 0; i < 10000 * 784; ++i) {
    zero_pixels += pixels[i] == 0;
    brightest = std::max(brightest, pixels[i]);
  }
  CHECK(brightest == 255);
  CHECK(zero_pixels > 10000 * 784 / 4);
  CHECK(zero_pixels < 10000 * 784);
}
