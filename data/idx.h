// IDX files (the MNIST format): magic 0x00 0x00 TYPE NDIM, NDIM big-endian uint32 sizes, then
// the elements row-major. Plain or gzip-compressed files are both read. The element count must
// match the sizes exactly: a truncated file or trailing bytes is an error naming the file.
#pragma once

#include <cstdint>
#include <span>
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

// Parses the bytes of an IDX file, inflating them first when they are gzip (detected from the
// content, so a .gz name on a plain file or the reverse both work). Throws std::runtime_error
// starting "<source_name>: " on a bad magic, an unsupported type, zero dimensions, a data length
// other than the product of the dims, or corrupt or truncated gzip data. Memory grows with the
// data really present, never with what the header claims.
IdxArray parse_idx(std::span<const uint8_t> bytes, const std::string& source_name);

// Reads the file at `path` and parses it as parse_idx does, naming `path` in every error.
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
