// safetensors reading and writing. Loading runs in two phases: parse and check the whole header
// (fields, dtypes, shapes, sizes, offsets, coverage of the data region) against the file's size,
// then allocate and read. Nothing is allocated from an unchecked number.
#include "core/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <stdexcept>

#include "core/atomic_file.h"
#include "core/factory.h"
#include "core/safetensors_header.h"

namespace zt {

// The format is little-endian; tensors are written and read as raw host memory.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

namespace {

using namespace safetensors_detail;

// ---- writing ------------------------------------------------------------------------------

void check_tensors_to_save(const std::string& path, const NamedTensors& tensors) {
  std::set<std::string_view> seen_names;
  for (const auto& [name, tensor] : tensors) {
    if (name == kMetadataKey) fail(path, "'__metadata__' is reserved and cannot name a tensor");
    if (!seen_names.insert(name).second) fail_tensor(path, name, "name appears twice");
    if (!tensor.defined()) fail_tensor(path, name, "tensor is undefined");
    if (!tensor.device().is_cpu()) {
      fail_tensor(path, name,
                  fmt::format("tensor is on {}; copy it to the cpu first", tensor.device().str()));
    }
  }
}

// The JSON header, padded with spaces to a multiple of 8 bytes so the data region starts
// 8-aligned (what the reference writer does and what readers that map the file rely on).
std::string build_header(const std::string& path, const NamedTensors& tensors,
                         const SafetensorsMetadata& metadata) {
  OrderedJson header = OrderedJson::object();
  if (!metadata.empty()) {
    OrderedJson metadata_json = OrderedJson::object();
    for (const auto& [key, value] : metadata) metadata_json[key] = value;
    header[kMetadataKey] = std::move(metadata_json);
  }
  uint64_t data_offset = 0;
  for (const auto& [name, tensor] : tensors) {
    uint64_t tensor_bytes = tensor.nbytes();
    header[name] = {{"dtype", safetensors_dtype_name(tensor.dtype())},
                    {"shape", tensor.sizes()},
                    {"data_offsets", {data_offset, data_offset + tensor_bytes}}};
    data_offset += tensor_bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& error) {
    // Names and metadata must be valid UTF-8 to be JSON strings.
    fail(path, fmt::format("cannot encode the header: {}", error.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

// Appends a tensor's elements in row-major order, whatever its strides: contiguous tensors go
// out in one write, others are gathered element by element through a bounded staging buffer.
void write_tensor_data(AtomicFileWriter& file, const Tensor& tensor) {
  size_t element_bytes = tensor.element_size();
  int64_t numel = tensor.numel();
  if (numel == 0) return;
  if (tensor.is_contiguous()) {
    file.write(tensor.raw_data(), tensor.nbytes());
    return;
  }
  constexpr size_t kStagingBytes = size_t(1) << 20;
  std::vector<char> staging;
  staging.reserve(kStagingBytes + element_bytes);
  const Shape& sizes = tensor.sizes();
  const Shape& strides = tensor.strides();
  const char* base = static_cast<const char*>(tensor.raw_data());
  std::vector<int64_t> index(sizes.size(), 0);
  for (int64_t linear = 0; linear < numel; ++linear) {
    int64_t element = 0;
    for (size_t d = 0; d < sizes.size(); ++d) element += index[d] * strides[d];
    const char* source = base + element * int64_t(element_bytes);
    staging.insert(staging.end(), source, source + element_bytes);
    if (staging.size() >= kStagingBytes) {
      file.write(staging.data(), staging.size());
      staging.clear();
    }
    for (size_t d = sizes.size(); d-- > 0;) {
      if (++index[d] < sizes[d]) break;
      index[d] = 0;
    }
  }
  file.write(staging.data(), staging.size());
}

// ---- reading ------------------------------------------------------------------------------

// An open file read by absolute offsets; closes itself.
class InputFile {
 public:
  explicit InputFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(path, fmt::format("cannot open: {}", std::strerror(errno)));
    struct stat info {};
    if (::fstat(fd_, &info) != 0) {
      int saved_errno = errno;
      ::close(fd_);
      fail(path, fmt::format("cannot stat: {}", std::strerror(saved_errno)));
    }
    if (!S_ISREG(info.st_mode)) {
      ::close(fd_);
      fail(path, "not a regular file");
    }
    size_bytes_ = uint64_t(info.st_size);
  }
  ~InputFile() { ::close(fd_); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size_bytes() const { return size_bytes_; }

  void read_at(uint64_t offset, void* destination, size_t bytes, std::string_view what) const {
    char* cursor = static_cast<char*>(destination);
    size_t remaining = bytes;
    while (remaining > 0) {
      ssize_t got = ::pread(fd_, cursor, remaining, off_t(offset + (bytes - remaining)));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail(path_, fmt::format("reading {}: {}", what, std::strerror(errno)));
      if (got == 0) {
        fail(path_, fmt::format("reading {}: file ended {} bytes early (did it change while "
                                "being read?)",
                                what, remaining));
      }
      cursor += got;
      remaining -= size_t(got);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_bytes_ = 0;
};

// Bytes in memory read by absolute offsets, with the same checks and messages as InputFile.
class InputBytes {
 public:
  InputBytes(std::span<const uint8_t> bytes, const std::string& source_name)
      : bytes_(bytes), source_name_(source_name) {}

  uint64_t size_bytes() const { return bytes_.size(); }

  void read_at(uint64_t offset, void* destination, size_t bytes, std::string_view what) const {
    if (offset > bytes_.size() || bytes > bytes_.size() - offset) {
      fail(source_name_,
           fmt::format("reading {}: input ends before byte {}", what, offset + bytes));
    }
    if (bytes > 0) std::memcpy(destination, bytes_.data() + offset, bytes);
  }

 private:
  std::span<const uint8_t> bytes_;
  std::string source_name_;
};

// The contents of `file` (an InputFile or InputBytes): the header is checked whole against the
// input's size before anything is allocated from it.
template <typename Input>
SafetensorsContents read_contents(const std::string& path, const Input& file) {
  uint64_t file_bytes = file.size_bytes();
  if (file_bytes < 8) {
    fail(path,
         fmt::format("file holds {} bytes, too short for the 8-byte header length", file_bytes));
  }
  uint64_t header_bytes = 0;
  file.read_at(0, &header_bytes, sizeof header_bytes, "the header length");
  if (header_bytes > kSafetensorsMaxHeaderBytes) {
    fail(path, fmt::format("header length {} is past the limit of {} bytes", header_bytes,
                           kSafetensorsMaxHeaderBytes));
  }
  if (header_bytes > file_bytes - 8) {
    fail(path, fmt::format("header length {} is larger than the {} bytes after the length field",
                           header_bytes, file_bytes - 8));
  }
  std::string header_text(header_bytes, '\0');
  file.read_at(8, header_text.data(), header_text.size(), "the header");
  uint64_t data_region_start = 8 + header_bytes;
  ParsedHeader header = parse_safetensors_header(path, header_text, file_bytes - data_region_start);

  SafetensorsContents contents;
  contents.metadata = std::move(header.metadata);
  contents.tensors.reserve(header.entries.size());
  for (const TensorEntry& entry : header.entries) {
    Tensor tensor = empty(entry.shape, {.dtype = entry.dtype, .device = Device::cpu()});
    if (entry.end > entry.begin) {
      file.read_at(data_region_start + entry.begin, tensor.raw_data(), entry.end - entry.begin,
                   fmt::format("tensor '{}'", entry.name));
    }
    contents.tensors.emplace_back(entry.name, std::move(tensor));
  }
  return contents;
}

}  // namespace

std::string_view safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::f16:
      return "F16";
    case DType::bf16:
      return "BF16";
    case DType::i32:
      return "I32";
    case DType::i64:
      return "I64";
    case DType::u8:
      return "U8";
    case DType::i8:
      return "I8";
    case DType::i4x2:  // no safetensors type packs 4-bit values: stored as their bytes
      return "U8";
  }
  throw std::invalid_argument("safetensors_dtype_name: unknown dtype");
}

std::optional<DType> dtype_from_safetensors_name(std::string_view name) {
  for (DType dtype : kSafetensorsDTypes) {
    if (safetensors_dtype_name(dtype) == name) return dtype;
  }
  return std::nullopt;
}

const Tensor& SafetensorsContents::at(std::string_view name) const {
  for (const auto& [tensor_name, tensor] : tensors) {
    if (tensor_name == name) return tensor;
  }
  throw std::out_of_range(fmt::format("safetensors: no tensor named '{}'", name));
}

bool SafetensorsContents::contains(std::string_view name) const {
  return std::any_of(tensors.begin(), tensors.end(),
                     [&](const auto& named) { return named.first == name; });
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const SafetensorsMetadata& metadata) {
  check_tensors_to_save(path, tensors);
  std::string header = build_header(path, tensors, metadata);
  uint64_t header_bytes = header.size();  // little-endian on disk, as on this host
  AtomicFileWriter file(path);
  file.write(&header_bytes, sizeof header_bytes);
  file.write(header.data(), header.size());
  for (const auto& named : tensors) write_tensor_data(file, named.second);
  file.commit();
}

SafetensorsContents load_safetensors(const std::string& path) {
  return read_contents(path, InputFile(path));
}

SafetensorsContents parse_safetensors(std::span<const uint8_t> bytes,
                                      const std::string& source_name) {
  return read_contents(source_name, InputBytes(bytes, source_name));
}

}  // namespace zt
