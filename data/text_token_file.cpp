// Writing the token file atomically and mapping it back with every size checked before use.
#include "data/text_token_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "core/atomic_file.h"

namespace zt::data {

static_assert(std::endian::native == std::endian::little,
              "the token file is little-endian and is mapped as it is");

namespace {

constexpr char kMagic[8] = {'Z', 'T', 'T', 'O', 'K', 'E', 'N', 'S'};
constexpr uint64_t kMaxVocabSize = 65536;  // u16 tokens

struct HeaderFields {
  char magic[8];
  uint32_t version;
  uint32_t vocab_size;
  uint64_t train_tokens;
  uint64_t validation_tokens;
  uint64_t train_documents;
  uint64_t validation_documents;
};
static_assert(sizeof(HeaderFields) == kTokenFileHeaderBytes);

void check_below_vocab(std::span<const uint16_t> tokens, uint32_t vocab_size, const char* split) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= vocab_size) {
      throw std::invalid_argument(
          fmt::format("write_token_file: {} token {} at position {} is not below the vocabulary "
                      "size {}",
                      split, tokens[i], i, vocab_size));
    }
  }
}

}  // namespace

void write_token_file(const std::string& path, const TokenSplits& splits, uint32_t vocab_size) {
  if (vocab_size == 0 || vocab_size > kMaxVocabSize) {
    throw std::invalid_argument(fmt::format("write_token_file: vocabulary size {} must be in 1..{}",
                                            vocab_size, kMaxVocabSize));
  }
  check_below_vocab(splits.train, vocab_size, "training");
  check_below_vocab(splits.validation, vocab_size, "validation");
  HeaderFields header{};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.version = kTokenFileVersion;
  header.vocab_size = vocab_size;
  header.train_tokens = splits.train.size();
  header.validation_tokens = splits.validation.size();
  header.train_documents = uint64_t(splits.train_documents);
  header.validation_documents = uint64_t(splits.validation_documents);
  AtomicFileWriter writer(path);
  writer.write(&header, sizeof(header));
  writer.write(splits.train.data(), splits.train.size() * sizeof(uint16_t));
  writer.write(splits.validation.data(), splits.validation.size() * sizeof(uint16_t));
  writer.commit();
}

TokenFile::TokenFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw std::runtime_error(
        fmt::format("{}: cannot open the token file: {}", path, std::strerror(errno)));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw std::runtime_error(fmt::format("{}: not a regular file", path));
  }
  uint64_t file_bytes = uint64_t(info.st_size);
  if (file_bytes < kTokenFileHeaderBytes) {
    ::close(fd);
    throw std::runtime_error(fmt::format(
        "{}: not a token file: {} bytes, shorter than the {}-byte header (prepare it again)", path,
        file_bytes, kTokenFileHeaderBytes));
  }
  mapping_ = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);  // the mapping keeps the file open
  if (mapping_ == MAP_FAILED) {
    mapping_ = nullptr;
    throw std::runtime_error(fmt::format("{}: mmap failed: {}", path, std::strerror(map_errno)));
  }
  mapping_bytes_ = file_bytes;
  try {
    HeaderFields header;
    std::memcpy(&header, mapping_, sizeof(header));
    if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0) {
      throw std::runtime_error(
          fmt::format("{}: not a token file (its first 8 bytes are not \"ZTTOKENS\")", path));
    }
    if (header.version != kTokenFileVersion) {
      throw std::runtime_error(
          fmt::format("{}: token file version {}, expected {} (prepare it again)", path,
                      header.version, kTokenFileVersion));
    }
    if (header.vocab_size == 0 || header.vocab_size > kMaxVocabSize) {
      throw std::runtime_error(fmt::format("{}: vocabulary size {} in the header, expected 1..{}",
                                           path, header.vocab_size, kMaxVocabSize));
    }
    // Each count is bounded by the file before the two are added, so nothing overflows.
    uint64_t payload_tokens = (file_bytes - kTokenFileHeaderBytes) / sizeof(uint16_t);
    bool counts_fit = header.train_tokens <= payload_tokens &&
                      header.validation_tokens <= payload_tokens - header.train_tokens;
    uint64_t expected_bytes =
        counts_fit ? kTokenFileHeaderBytes +
                         (header.train_tokens + header.validation_tokens) * sizeof(uint16_t)
                   : 0;
    if (!counts_fit || expected_bytes != file_bytes) {
      throw std::runtime_error(fmt::format(
          "{}: truncated or overlong: the header promises {} training and {} validation tokens, "
          "the file has {} bytes (prepare it again)",
          path, header.train_tokens, header.validation_tokens, file_bytes));
    }
    counts_ = {header.vocab_size, header.train_tokens, header.validation_tokens,
               header.train_documents, header.validation_documents};
    const uint16_t* tokens = reinterpret_cast<const uint16_t*>(static_cast<const char*>(mapping_) +
                                                               kTokenFileHeaderBytes);
    train_ = {tokens, size_t(header.train_tokens)};
    validation_ = {tokens + header.train_tokens, size_t(header.validation_tokens)};
    check_tokens(train_, 0);
    check_tokens(validation_, header.train_tokens);
  } catch (...) {
    ::munmap(mapping_, mapping_bytes_);
    mapping_ = nullptr;
    throw;
  }
}

TokenFile::~TokenFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
}

void TokenFile::check_tokens(std::span<const uint16_t> tokens, uint64_t first_position) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= counts_.vocab_size) {
      throw std::runtime_error(
          fmt::format("{}: token {} at position {} is not below the vocabulary size {}", path_,
                      tokens[i], first_position + i, counts_.vocab_size));
    }
  }
}

TokenFileCounts prepare_fortunes_token_file(const std::string& fortunes_directory,
                                            const std::string& token_path,
                                            int64_t validation_every) {
  TokenSplits splits =
      split_and_encode(read_fortune_documents(fortunes_directory), validation_every);
  if (splits.train.empty() || splits.validation.empty()) {
    throw std::runtime_error(fmt::format(
        "{}: {} documents leave {} for training and {} for validation (one in {} held out); "
        "both must have some",
        fortunes_directory, splits.train_documents + splits.validation_documents,
        splits.train_documents, splits.validation_documents, validation_every));
  }
  write_token_file(token_path, splits, uint32_t(kByteVocabSize));
  return {uint32_t(kByteVocabSize), splits.train.size(), splits.validation.size(),
          uint64_t(splits.train_documents), uint64_t(splits.validation_documents)};
}

}  // namespace zt::data
