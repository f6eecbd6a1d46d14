// IDX files (the MNIST format): magic 0x00 0x00 TYPE NDIM, NDIM big-endian uint32 sizes, then
// the elements row-major. Plain or gzip-compressed files are both read. The element count must
// match the sizes exactly: a truncated file or trailing bytes is an error naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace zt::data {

// The type byte of the only element type read: unsigned bytes (what MNIST uses).
inline constexpr uint8_t kIdxTypeUnsignedByte = 0x08;

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> values;  // row-major, exactly the product of dims
};

// Reads `path`, decompressing it when it is gzip (detected from its content, so a .gz name on a
// plain file or the reverse both work). Throws std::runtime_error naming `path` on a bad magic,
// an unsupported type, zero dimensions, or a data length other than the product of the dims.
IdxArray read_idx(const std::string& path);

struct MnistSplit {
  Tensor images;  // [N, 28, 28] u8
  Tensor labels;  // [N] i64, each in 0..9
};

// Reads {dir}/{split}-images-idx3-ubyte and {dir}/{split}-labels-idx1-ubyte, each plain or with
// a .gz suffix (plain preferred), for split "train" or "t10k". Checks that images are
// [N, 28, 28] with N > 0, labels are [N] and below 10. Tensors are CPU ones with the caller's
// memory tag.
MnistSplit load_mnist_split(const std::string& dir, const std::string& split);

}  // namespace zt::data
