// Plain text as documents and byte-level tokens: the fortune files of Debian's `fortunes` and
// `fortunes-min` packages (entries separated by lines holding only "%"), a deterministic
// held-out split of the documents, and the byte tokenizer (vocabulary 256: a token is a byte).
// Invariant: the token streams are a pure function of the files' names and bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace zt::data {

inline constexpr int64_t kByteVocabSize = 256;
// What ends every document in a token stream: a blank line, so the model learns where a fortune
// ends and sampled text reads as separate paragraphs.
inline constexpr std::string_view kDocumentEnd = "\n\n";

// The entries of one fortune file, each without its "%" line and without leading or trailing
// blank lines; empty entries are dropped.
std::vector<std::string> split_fortune_entries(std::string_view text);

// The fortune files of `directory` in name order: regular files whose names do not end in
// ".dat" (strfile's index) or ".u8" (links to the same text). Throws std::runtime_error naming
// the directory when it cannot be listed or holds no fortune file.
std::vector<std::string> list_fortune_files(const std::string& directory);

// The byte tokenizer: token i is byte i.
std::vector<uint16_t> encode_bytes(std::string_view text);
// Throws std::invalid_argument naming the position of a token outside 0..255.
std::string decode_bytes(std::span<const uint16_t> tokens);

struct TokenSplits {
  std::vector<uint16_t> train;
  std::vector<uint16_t> validation;
  int64_t train_documents = 0;
  int64_t validation_documents = 0;
};

// Byte tokens of `documents`, each followed by kDocumentEnd. Every `validation_every`-th
// document (positions validation_every - 1, 2 * validation_every - 1, ...) goes to the
// validation stream, the rest to training: held-out documents are spread over every file, so
// validation sees the same mix of topics as training (the last N% would be a few files only).
TokenSplits split_and_encode(const std::vector<std::string>& documents, int64_t validation_every);

// Reads every fortune file of `directory` (list_fortune_files order) into one document list.
std::vector<std::string> read_fortune_documents(const std::string& directory);

}  // namespace zt::data
