// The token file: a corpus tokenised once, read by every rank through mmap. Layout, all
// little-endian: a 48-byte header (magic "ZTTOKENS", u32 version 1, u32 vocabulary size,
// u64 training tokens, u64 validation tokens, u64 training documents, u64 validation
// documents), then the training tokens and the validation tokens as u16 (room for a BPE
// vocabulary later; a byte vocabulary wastes a byte a token, 2.5 MB on the fortunes).
// Invariant: an opened TokenFile has the exact size its header implies and every token is below
// the vocabulary size; anything else is a one-line error naming the file.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "data/text_corpus.h"

namespace zt::data {

inline constexpr uint32_t kTokenFileVersion = 1;
inline constexpr size_t kTokenFileHeaderBytes = 48;

struct TokenFileCounts {
  uint32_t vocab_size = 0;
  uint64_t train_tokens = 0;
  uint64_t validation_tokens = 0;
  uint64_t train_documents = 0;
  uint64_t validation_documents = 0;
};

// Writes `splits` to `path` atomically (temporary name, then rename). Throws
// std::invalid_argument when a token is not below `vocab_size` (at most 65536), and
// std::runtime_error naming `path` when it cannot be written.
void write_token_file(const std::string& path, const TokenSplits& splits, uint32_t vocab_size);

// A token file mapped read-only into memory; the spans stay valid while the object lives.
class TokenFile {
 public:
  // Maps and checks the file; throws std::runtime_error "<path>: <what is wrong>".
  explicit TokenFile(const std::string& path);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  const TokenFileCounts& counts() const { return counts_; }
  int64_t vocab_size() const { return counts_.vocab_size; }
  std::span<const uint16_t> train() const { return train_; }
  std::span<const uint16_t> validation() const { return validation_; }
  const std::string& path() const { return path_; }

 private:
  void check_tokens(std::span<const uint16_t> tokens, uint64_t first_position) const;

  std::string path_;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  TokenFileCounts counts_;
  std::span<const uint16_t> train_;
  std::span<const uint16_t> validation_;
};

// Reads the fortune files of `fortunes_directory`, holds out one document in
// `validation_every`, tokenises by bytes and writes the token file at `token_path`.
TokenFileCounts prepare_fortunes_token_file(const std::string& fortunes_directory,
                                            const std::string& token_path,
                                            int64_t validation_every);

}  // namespace zt::data
