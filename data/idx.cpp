// IDX parsing from bytes in memory: read_idx loads the file's (possibly compressed) bytes and
// parses them, so files and fuzzed buffers run one code path. The header is read and checked
// first; the data is then copied or inflated in growing chunks, so memory grows with what the
// input really holds, never with what a corrupt header claims.
#include "data/idx.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
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

bool starts_with_gzip_magic(std::span<const uint8_t> bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// The IDX bytes in order: copied when plain, inflated when gzip (one or more concatenated
// members, as gzip allows). read() fills as much as there is and reports a corrupt or truncated
// gzip stream instead of passing it off as a short file.
class IdxInput {
 public:
  IdxInput(std::span<const uint8_t> bytes, const std::string& source_name)
      : bytes_(bytes), source_name_(source_name), gzip_(starts_with_gzip_magic(bytes)) {
    if (!gzip_) return;
    // 16 + MAX_WBITS: a gzip wrapper only, as the magic said.
    if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK) fail(source_name_, "zlib: out of memory");
  }
  ~IdxInput() {
    if (gzip_) inflateEnd(&stream_);
  }
  IdxInput(const IdxInput&) = delete;
  IdxInput& operator=(const IdxInput&) = delete;

  // Reads up to `bytes`; returns how many were read (fewer only at the end of the data).
  size_t read(void* destination, size_t bytes) {
    if (!gzip_) {
      size_t count = std::min(bytes, bytes_.size() - consumed_);
      if (count > 0) std::memcpy(destination, bytes_.data() + consumed_, count);
      consumed_ += count;
      return count;
    }
    return inflate_into(static_cast<uint8_t*>(destination), bytes);
  }

 private:
  // zlib counts in 32-bit uInt: input and output go through in slices of at most this.
  static constexpr size_t kZlibSliceBytes = size_t(1) << 30;

  size_t inflate_into(uint8_t* destination, size_t bytes) {
    size_t total = 0;
    while (total < bytes && !stream_ended_) {
      if (stream_.avail_in == 0 && consumed_ < bytes_.size()) {
        size_t slice = std::min(kZlibSliceBytes, bytes_.size() - consumed_);
        // zlib never writes through next_in; the cast only satisfies its pre-const API.
        stream_.next_in = const_cast<Bytef*>(bytes_.data() + consumed_);
        stream_.avail_in = uInt(slice);
        consumed_ += slice;
      }
      uInt request = uInt(std::min(kZlibSliceBytes, bytes - total));
      stream_.next_out = destination + total;
      stream_.avail_out = request;
      int status = inflate(&stream_, Z_NO_FLUSH);
      total += request - stream_.avail_out;
      if (status == Z_STREAM_END) {
        next_member();
      } else if (status == Z_BUF_ERROR && stream_.avail_in == 0 && consumed_ < bytes_.size()) {
        continue;  // zlib used up its slice of input; the next turn hands it more
      } else if (status == Z_BUF_ERROR) {
        // No progress with all the input given: the stream stops before its end marker.
        fail(source_name_, "corrupt or truncated gzip data: the input ends inside the stream");
      } else if (status != Z_OK) {
        fail(source_name_, fmt::format("corrupt or truncated gzip data: {}",
                                       stream_.msg != nullptr ? stream_.msg : zError(status)));
      }
    }
    return total;
  }

  // After a member's end: the input ends, another member follows, or it is an error (gzread
  // would skip such garbage silently; an IDX input with stray bytes is a corrupt one).
  void next_member() {
    std::span<const uint8_t> rest = bytes_.subspan(consumed_ - stream_.avail_in);
    if (rest.empty()) {
      stream_ended_ = true;
    } else if (starts_with_gzip_magic(rest)) {
      inflateReset(&stream_);
    } else {
      fail(source_name_, fmt::format("corrupt or truncated gzip data: {} bytes after the gzip "
                                     "stream are not gzip data",
                                     rest.size()));
    }
  }

  std::span<const uint8_t> bytes_;
  std::string source_name_;
  bool gzip_;
  size_t consumed_ = 0;  // bytes copied (plain) or handed to zlib (gzip)
  z_stream stream_{};
  bool stream_ended_ = false;
};

uint32_t big_endian_u32(const uint8_t* bytes) {
  return uint32_t(bytes[0]) << 24 | uint32_t(bytes[1]) << 16 | uint32_t(bytes[2]) << 8 |
         uint32_t(bytes[3]);
}

// The header's dims after checking the magic and type; leaves `input` at the first element.
std::vector<int64_t> read_header(const std::string& path, IdxInput& input) {
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

// The whole file, as stored (compressed or not).
std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) fail(path, fmt::format("cannot open: {}", std::strerror(errno)));
  std::vector<uint8_t> bytes;
  constexpr size_t kReadBytes = size_t(1) << 20;
  size_t got = 0;
  do {
    size_t before = bytes.size();
    bytes.resize(before + kReadBytes);
    got = std::fread(bytes.data() + before, 1, kReadBytes, file);
    bytes.resize(before + got);
  } while (got == kReadBytes);
  int read_errno = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (read_errno != 0) fail(path, fmt::format("cannot read: {}", std::strerror(read_errno)));
  return bytes;
}

}  // namespace

IdxArray parse_idx(std::span<const uint8_t> bytes, const std::string& source_name) {
  IdxInput input(bytes, source_name);
  IdxArray array;
  array.dims = read_header(source_name, input);
  uint64_t expected_bytes = 1;
  for (int64_t size : array.dims) {
    if (__builtin_mul_overflow(expected_bytes, uint64_t(size), &expected_bytes)) {
      fail(source_name, fmt::format("dims {} hold more than 2^64 elements", shape_str(array.dims)));
    }
  }

  // Chunks start small and double, so a header that lies about a huge size costs at most twice
  // the data really present (plus the first chunk), and a real large file few reallocations.
  size_t chunk_bytes = size_t(1) << 16;
  constexpr size_t kMaxChunkBytes = size_t(1) << 24;
  uint64_t actual_bytes = 0;
  while (actual_bytes < expected_bytes) {
    size_t request = size_t(std::min<uint64_t>(chunk_bytes, expected_bytes - actual_bytes));
    array.values.resize(actual_bytes + request);
    size_t got = input.read(array.values.data() + actual_bytes, request);
    actual_bytes += got;
    if (got < request) break;
    chunk_bytes = std::min(chunk_bytes * 2, kMaxChunkBytes);
  }
  array.values.resize(actual_bytes);
  // Count what is left past the expected end, so the error says how long the data really is.
  std::vector<uint8_t> scratch(size_t(1) << 16);
  for (size_t got; (got = input.read(scratch.data(), scratch.size())) > 0;) actual_bytes += got;

  if (actual_bytes != expected_bytes) {
    std::string kind = actual_bytes < expected_bytes ? "truncated" : "trailing bytes";
    fail(source_name, fmt::format("{}: data holds {} bytes, dims {} need {}", kind, actual_bytes,
                                  shape_str(array.dims), expected_bytes));
  }
  return array;
}

IdxArray read_idx(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  return parse_idx(bytes, path);
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
