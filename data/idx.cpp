// IDX reading through zlib's gzFile, which reads gzip and plain files alike. The header is read
// and checked first; the data is then read in chunks, so memory grows with what the file really
// holds, never with what a corrupt header claims.
#include "data/idx.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "core/factory.h"

namespace zt::data {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}", path, what));
}

std::string idx_type_name(uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "not an IDX type";
  }
}

// A gzFile that closes itself; read() fills as much as the file holds and reports zlib errors
// (a corrupt or truncated gzip stream) instead of passing them off as a short file.
class GzInput {
 public:
  explicit GzInput(const std::string& path) : path_(path) {
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) fail(path, fmt::format("cannot open: {}", std::strerror(errno)));
    gzbuffer(file_, 1 << 18);
  }
  ~GzInput() { gzclose(file_); }
  GzInput(const GzInput&) = delete;
  GzInput& operator=(const GzInput&) = delete;

  // Reads up to `bytes`; returns how many were read (fewer only at the end of the data).
  size_t read(void* destination, size_t bytes) {
    size_t total = 0;
    char* cursor = static_cast<char*>(destination);
    while (total < bytes) {
      unsigned request = unsigned(std::min<size_t>(bytes - total, 1u << 30));
      int got = gzread(file_, cursor + total, request);
      if (got < 0) check_stream();
      if (got <= 0) break;
      total += size_t(got);
    }
    check_stream();
    return total;
  }

 private:
  void check_stream() {
    int status = Z_OK;
    const char* message = gzerror(file_, &status);
    if (status != Z_OK && status != Z_STREAM_END) {
      fail(path_, fmt::format("corrupt or truncated gzip data: {}", message));
    }
  }

  std::string path_;
  gzFile file_ = nullptr;
};

uint32_t big_endian_u32(const uint8_t* bytes) {
  return uint32_t(bytes[0]) << 24 | uint32_t(bytes[1]) << 16 | uint32_t(bytes[2]) << 8 |
         uint32_t(bytes[3]);
}

// The header's dims after checking the magic and type; leaves `input` at the first element.
std::vector<int64_t> read_header(const std::string& path, GzInput& input) {
  uint8_t magic[4];
  size_t magic_bytes = input.read(magic, sizeof magic);
  if (magic_bytes < sizeof magic) {
    fail(path, fmt::format("holds {} bytes, too short for the 4-byte IDX magic", magic_bytes));
  }
  if (magic[0] != 0 || magic[1] != 0) {
    fail(path, fmt::format("bad magic {:02x} {:02x} {:02x} {:02x}: an IDX file starts with "
                           "00 00 TYPE NDIM",
                           magic[0], magic[1], magic[2], magic[3]));
  }
  uint8_t type = magic[2];
  if (type != kIdxTypeUnsignedByte) {
    fail(path, fmt::format("element type 0x{:02X} ({}) is not supported; expected 0x08 "
                           "(unsigned byte)",
                           type, idx_type_name(type)));
  }
  size_t dim_count = magic[3];
  if (dim_count == 0) fail(path, "header declares 0 dimensions, expected at least 1");
  std::vector<uint8_t> dim_bytes(dim_count * 4);
  size_t got = input.read(dim_bytes.data(), dim_bytes.size());
  if (got < dim_bytes.size()) {
    fail(path, fmt::format("header is truncated: {} dimensions need {} bytes of sizes, the file "
                           "holds {}",
                           dim_count, dim_bytes.size(), got));
  }
  std::vector<int64_t> dims(dim_count);
  for (size_t d = 0; d < dim_count; ++d) dims[d] = big_endian_u32(&dim_bytes[d * 4]);
  return dims;
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  GzInput input(path);
  IdxArray array;
  array.dims = read_header(path, input);
  uint64_t expected_bytes = 1;
  for (int64_t size : array.dims) {
    if (__builtin_mul_overflow(expected_bytes, uint64_t(size), &expected_bytes)) {
      fail(path, fmt::format("dims {} hold more than 2^64 elements", shape_str(array.dims)));
    }
  }

  constexpr size_t kChunkBytes = size_t(1) << 20;
  uint64_t actual_bytes = 0;
  while (actual_bytes < expected_bytes) {
    size_t request = size_t(std::min<uint64_t>(kChunkBytes, expected_bytes - actual_bytes));
    array.values.resize(actual_bytes + request);
    size_t got = input.read(array.values.data() + actual_bytes, request);
    actual_bytes += got;
    if (got < request) break;
  }
  array.values.resize(actual_bytes);
  // Count what is left past the expected end, so the error says how long the data really is.
  std::vector<uint8_t> scratch(kChunkBytes);
  for (size_t got; (got = input.read(scratch.data(), scratch.size())) > 0;) actual_bytes += got;

  if (actual_bytes != expected_bytes) {
    std::string kind = actual_bytes < expected_bytes ? "truncated" : "trailing bytes";
    fail(path, fmt::format("{}: data holds {} bytes, dims {} need {}", kind, actual_bytes,
                           shape_str(array.dims), expected_bytes));
  }
  return array;
}

namespace {

// {dir}/{name} if it exists, else {dir}/{name}.gz if that exists, else an error naming both.
std::string find_plain_or_gz(const std::string& dir, const std::string& name) {
  std::filesystem::path plain = std::filesystem::path(dir) / name;
  if (std::filesystem::exists(plain)) return plain.string();
  std::filesystem::path compressed = plain.string() + ".gz";
  if (std::filesystem::exists(compressed)) return compressed.string();
  throw std::runtime_error(
      fmt::format("{}: neither {} nor {}.gz exists", dir, plain.string(), plain.string()));
}

}  // namespace

MnistSplit load_mnist_split(const std::string& dir, const std::string& split) {
  if (split != "train" && split != "t10k") {
    throw std::invalid_argument(
        fmt::format("load_mnist_split: split '{}' is neither 'train' nor 't10k'", split));
  }
  std::string images_path = find_plain_or_gz(dir, split + "-images-idx3-ubyte");
  std::string labels_path = find_plain_or_gz(dir, split + "-labels-idx1-ubyte");
  IdxArray images = read_idx(images_path);
  IdxArray labels = read_idx(labels_path);

  constexpr int64_t kImageSide = 28;
  if (images.dims.size() != 3 || images.dims[1] != kImageSide || images.dims[2] != kImageSide) {
    fail(images_path, fmt::format("dims {}, expected [N, 28, 28]", shape_str(images.dims)));
  }
  if (labels.dims.size() != 1) {
    fail(labels_path, fmt::format("dims {}, expected [N]", shape_str(labels.dims)));
  }
  int64_t count = images.dims[0];
  if (count == 0) fail(images_path, "holds 0 images, expected at least 1");
  if (labels.dims[0] != count) {
    fail(labels_path,
         fmt::format("holds {} labels but {} holds {} images", labels.dims[0], images_path, count));
  }

  MnistSplit result;
  result.images = empty(images.dims, {.dtype = DType::u8});
  if (!images.values.empty()) {
    std::memcpy(result.images.raw_data(), images.values.data(), images.values.size());
  }
  result.labels = empty({count}, {.dtype = DType::i64});
  int64_t* label_values = result.labels.data_ptr<int64_t>();
  constexpr uint8_t kClassCount = 10;
  for (int64_t i = 0; i < count; ++i) {
    uint8_t label = labels.values[size_t(i)];
    if (label >= kClassCount) {
      fail(labels_path, fmt::format("label {} at index {} is not a class in 0..9", label, i));
    }
    label_values[i] = label;
  }
  return result;
}

}  // namespace zt::data
