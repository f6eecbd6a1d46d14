// Fortune files to documents, documents to byte-token streams.
#include "data/text_corpus.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace zt::data {

namespace {

// Leading newlines go (a blank first line carries nothing); leading spaces stay, since they
// indent verse and ASCII art. Trailing whitespace goes: kDocumentEnd supplies the ending.
std::string trimmed_entry(std::string_view entry) {
  size_t first = entry.find_first_not_of("\r\n");
  if (first == std::string_view::npos) return {};
  size_t last = entry.find_last_not_of(" \t\r\n");
  return std::string(entry.substr(first, last + 1 - first));
}

bool ends_with(const std::string& name, std::string_view suffix) {
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open for reading", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) throw std::runtime_error(fmt::format("{}: read error", path));
  return contents.str();
}

}  // namespace

std::vector<std::string> split_fortune_entries(std::string_view text) {
  std::vector<std::string> entries;
  size_t entry_begin = 0;
  size_t line_begin = 0;
  auto close_entry = [&](size_t entry_end) {
    std::string entry = trimmed_entry(text.substr(entry_begin, entry_end - entry_begin));
    if (!entry.empty()) entries.push_back(std::move(entry));
  };
  while (line_begin < text.size()) {
    size_t newline = text.find('\n', line_begin);
    size_t line_end = newline == std::string_view::npos ? text.size() : newline;
    size_t next_line = newline == std::string_view::npos ? text.size() : newline + 1;
    std::string_view line = text.substr(line_begin, line_end - line_begin);
    if (line == "%" || line == "%\r") {
      close_entry(line_begin);
      entry_begin = next_line;
    }
    line_begin = next_line;
  }
  close_entry(text.size());  // the text after the last "%" (usually nothing)
  return entries;
}

std::vector<std::string> list_fortune_files(const std::string& directory) {
  std::error_code error;
  std::filesystem::directory_iterator listing(directory, error);
  if (error) {
    throw std::runtime_error(
        fmt::format("{}: cannot list the fortune directory: {}", directory, error.message()));
  }
  std::vector<std::string> files;
  for (const std::filesystem::directory_entry& entry : listing) {
    std::string name = entry.path().filename().string();
    if (ends_with(name, ".dat") || ends_with(name, ".u8")) continue;
    if (!entry.is_regular_file(error) || entry.is_symlink(error)) continue;
    files.push_back(entry.path().string());
  }
  if (files.empty()) {
    throw std::runtime_error(
        fmt::format("{}: no fortune files (expected text files beside their .dat indexes; "
                    "Debian's fortunes packages put them in /usr/share/games/fortunes)",
                    directory));
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<uint16_t> encode_bytes(std::string_view text) {
  std::vector<uint16_t> tokens(text.size());
  for (size_t i = 0; i < text.size(); ++i) tokens[i] = static_cast<unsigned char>(text[i]);
  return tokens;
}

std::string decode_bytes(std::span<const uint16_t> tokens) {
  std::string text(tokens.size(), '\0');
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= kByteVocabSize) {
      throw std::invalid_argument(
          fmt::format("decode_bytes: token {} at position {} is outside the byte vocabulary 0..255",
                      tokens[i], i));
    }
    text[i] = static_cast<char>(tokens[i]);
  }
  return text;
}

TokenSplits split_and_encode(const std::vector<std::string>& documents, int64_t validation_every) {
  if (validation_every < 2) {
    throw std::invalid_argument(fmt::format(
        "split_and_encode: validation_every must be at least 2 (one document in N held out), "
        "got {}",
        validation_every));
  }
  TokenSplits splits;
  for (size_t index = 0; index < documents.size(); ++index) {
    bool held_out = int64_t(index % size_t(validation_every)) == validation_every - 1;
    std::vector<uint16_t>& stream = held_out ? splits.validation : splits.train;
    for (std::string_view piece : {std::string_view(documents[index]), kDocumentEnd}) {
      for (char byte : piece) stream.push_back(static_cast<unsigned char>(byte));
    }
    ++(held_out ? splits.validation_documents : splits.train_documents);
  }
  return splits;
}

std::vector<std::string> read_fortune_documents(const std::string& directory) {
  std::vector<std::string> documents;
  for (const std::string& path : list_fortune_files(directory)) {
    std::vector<std::string> entries = split_fortune_entries(read_whole_file(path));
    documents.insert(documents.end(), std::make_move_iterator(entries.begin()),
                     std::make_move_iterator(entries.end()));
  }
  return documents;
}

}  // namespace zt::data
