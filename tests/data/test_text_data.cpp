// Text data: fortune entries split on "%" lines, byte tokens round trip, the held-out split's
// sizes, the token file's checks (every malformed file is a one-line error naming it), and
// the training windows (equal to the text, shifted targets, disjoint across ranks, repeatable).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/text_corpus.h"
#include "data/text_token_file.h"
#include "data/text_windows.h"
#include "tests/io/temp_dir.h"
#include "tests/requirements.h"

using namespace zt;
using namespace zt::data;
using zt::testing::read_bytes;
using zt::testing::TempDir;
using zt::testing::write_bytes;

namespace {

// Documents with every byte value somewhere, so the byte tokenizer is checked over all 256.
std::vector<std::string> sample_documents(int count) {
  std::vector<std::string> documents;
  for (int i = 0; i < count; ++i) {
    std::string document = "Fortune number " + std::to_string(i) + ": ";
    for (int byte = 0; byte < 256; byte += 7) document.push_back(char((byte + i) % 256));
    documents.push_back(document);
  }
  return documents;
}

std::string expected_stream(const std::vector<std::string>& documents, bool validation,
                            int64_t every) {
  std::string text;
  for (size_t i = 0; i < documents.size(); ++i) {
    if ((int64_t(i % size_t(every)) == every - 1) != validation) continue;
    text += documents[i] + std::string(kDocumentEnd);
  }
  return text;
}

std::string error_of(const std::string& path) {
  try {
    TokenFile file(path);
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

}  // namespace

TEST_CASE("split_fortune_entries cuts on lines holding only %, trims blank edges, keeps indents") {
  std::string text =
      "First one.\n%\n\n  Indented\n\nsecond, two paragraphs.\n\n%\n%\n100% sure\n%\n";
  std::vector<std::string> entries = split_fortune_entries(text);
  REQUIRE(entries.size() == 3);
  CHECK(entries[0] == "First one.");
  CHECK(entries[1] == "  Indented\n\nsecond, two paragraphs.");
  CHECK(entries[2] == "100% sure");  // a % inside a line is text
  CHECK(split_fortune_entries("no separator at the end") ==
        std::vector<std::string>{"no separator at the end"});
  CHECK(split_fortune_entries("%\n%\n").empty());
}

TEST_CASE("fortune files: text files in name order, strfile's .dat and the .u8 links left out") {
  TempDir dir;
  write_bytes(dir.file("zippy"), "Yow!\n%\nAre we having fun yet?\n%\n");
  write_bytes(dir.file("art"), "Art is long.\n%\n");
  write_bytes(dir.file("art.dat"), std::string("\x00\x00\x00\x02", 4));
  std::filesystem::create_symlink("art", dir.file("art.u8"));
  std::vector<std::string> files = list_fortune_files(dir.path().string());
  CHECK(files == std::vector<std::string>{dir.file("art"), dir.file("zippy")});
  CHECK(read_fortune_documents(dir.path().string()) ==
        std::vector<std::string>{"Art is long.", "Yow!", "Are we having fun yet?"});
  TempDir empty;
  write_bytes(empty.file("only.dat"), "x");
  CHECK_THROWS_WITH_AS(list_fortune_files(empty.path().string()),
                       doctest::Contains(": no fortune files"), std::runtime_error);
  CHECK_THROWS_WITH_AS(list_fortune_files(empty.file("missing")),
                       doctest::Contains("cannot list the fortune directory"), std::runtime_error);
}

TEST_CASE("byte tokens round trip every byte value; a token over 255 is refused") {
  std::string all_bytes;
  for (int byte = 0; byte < 256; ++byte) all_bytes.push_back(char(byte));
  std::vector<uint16_t> tokens = encode_bytes(all_bytes);
  REQUIRE(tokens.size() == 256);
  for (int byte = 0; byte < 256; ++byte) CHECK(tokens[size_t(byte)] == byte);
  CHECK(decode_bytes(tokens) == all_bytes);
  std::vector<uint16_t> bad = {65, 256};
  CHECK_THROWS_WITH_AS(decode_bytes(bad), doctest::Contains("position 1"), std::invalid_argument);
}

TEST_CASE("split_and_encode holds out every Nth document and both streams equal the text") {
  std::vector<std::string> documents = sample_documents(25);
  TokenSplits splits = split_and_encode(documents, 10);
  CHECK(splits.validation_documents == 2);  // documents 9 and 19
  CHECK(splits.train_documents == 23);
  CHECK(decode_bytes(splits.train) == expected_stream(documents, false, 10));
  CHECK(decode_bytes(splits.validation) == expected_stream(documents, true, 10));
  CHECK(splits.train.size() + splits.validation.size() ==
        expected_stream(documents, false, 10).size() + expected_stream(documents, true, 10).size());
  CHECK_THROWS_AS(split_and_encode(documents, 1), std::invalid_argument);
}

TEST_CASE("a token file written once maps back to the same tokens and counts") {
  TempDir dir;
  TokenSplits splits = split_and_encode(sample_documents(30), 5);
  std::string path = dir.file("corpus.tokens");
  write_token_file(path, splits, 256);
  TokenFile file(path);
  CHECK(file.vocab_size() == 256);
  CHECK(file.counts().train_documents == 24);
  CHECK(file.counts().validation_documents == 6);
  CHECK(std::vector<uint16_t>(file.train().begin(), file.train().end()) == splits.train);
  CHECK(std::vector<uint16_t>(file.validation().begin(), file.validation().end()) ==
        splits.validation);
  CHECK(std::filesystem::file_size(path) ==
        kTokenFileHeaderBytes + 2 * (splits.train.size() + splits.validation.size()));
  // Nothing but the file itself is left in the folder (the temporary name was renamed).
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()),
                      std::filesystem::directory_iterator()) == 1);
  CHECK_THROWS_AS(write_token_file(dir.file("small.tokens"), splits, 100), std::invalid_argument);
  CHECK_FALSE(std::filesystem::exists(dir.file("small.tokens")));
}

TEST_CASE("a malformed token file is a one-line error naming the file and what is wrong") {
  TempDir dir;
  std::string good_path = dir.file("good.tokens");
  write_token_file(good_path, split_and_encode(sample_documents(10), 5), 256);
  std::string good = read_bytes(good_path);
  struct Case {
    const char* name;
    std::string bytes;
    const char* expected;
  };
  std::string bad_magic = good, bad_version = good, bad_vocab = good, bad_token = good;
  bad_magic[0] = 'X';
  bad_version[8] = 2;                        // u32 version at byte 8
  bad_vocab[12] = 0, bad_vocab[13] = 0;      // u32 vocabulary at byte 12: 256 -> 0
  bad_token[kTokenFileHeaderBytes + 3] = 1;  // high byte of token 1: now 256 or more
  for (const Case& bad : {
           Case{"empty", "", "shorter than the 48-byte header"},
           Case{"short", good.substr(0, 20), "shorter than the 48-byte header"},
           Case{"magic", bad_magic, "not a token file"},
           Case{"version", bad_version, "token file version 2, expected 1"},
           Case{"vocab", bad_vocab, "vocabulary size 0 in the header"},
           Case{"truncated", good.substr(0, good.size() - 2), "truncated or overlong"},
           Case{"overlong", good + "xy", "truncated or overlong"},
           Case{"token", bad_token, "at position 1 is not below the vocabulary size 256"},
       }) {
    CAPTURE(bad.name);
    std::string path = dir.file(std::string(bad.name) + ".tokens");
    write_bytes(path, bad.bytes);
    std::string message = error_of(path);
    CHECK(message.find(path + ": ") == 0);
    CHECK(message.find(bad.expected) != std::string::npos);
    CHECK(message.find('\n') == std::string::npos);
  }
  CHECK(error_of(dir.file("missing.tokens")).find("cannot open the token file") !=
        std::string::npos);
  CHECK(error_of(good_path).empty());
}

TEST_CASE("token windows equal the text, targets are inputs shifted by one, steps repeat") {
  std::string text;
  for (int i = 0; text.size() < 5000; ++i) text += "line " + std::to_string(i * 7919 % 1000) + "\n";
  std::vector<uint16_t> tokens = encode_bytes(text);
  TokenWindowSampler sampler(tokens, {.batch_size = 4, .block_size = 16, .seed = 3});
  CHECK(sampler.windows_per_epoch() == int64_t(text.size()) / 16 - 1);
  CHECK(sampler.batches_per_epoch() == sampler.windows_per_epoch() / 4);
  for (int64_t step : {int64_t(0), int64_t(5), sampler.batches_per_epoch() + 2}) {
    CAPTURE(step);
    std::vector<int64_t> starts = sampler.window_starts(step);
    TokenBatch batch = sampler.batch(step);
    REQUIRE(batch.inputs.sizes() == Shape{4, 16});
    REQUIRE(batch.targets.sizes() == Shape{4, 16});
    CHECK(batch.inputs.dtype() == DType::i64);
    std::vector<double> inputs = batch.inputs.to_vector(), targets = batch.targets.to_vector();
    for (size_t row = 0; row < 4; ++row) {
      CHECK((starts[row] - sampler.epoch_shift(step / sampler.batches_per_epoch())) % 16 == 0);
      for (size_t t = 0; t < 16; ++t) {
        CHECK(inputs[row * 16 + t] == double((unsigned char)text[size_t(starts[row]) + t]));
        CHECK(targets[row * 16 + t] == double((unsigned char)text[size_t(starts[row]) + t + 1]));
      }
    }
  }
  // The same (seed, step) gives the same windows from a fresh sampler, as a resumed run needs.
  TokenWindowSampler resumed(tokens, {.batch_size = 4, .block_size = 16, .seed = 3});
  CHECK(resumed.window_starts(5) == sampler.window_starts(5));
  TokenWindowSampler reseeded(tokens, {.batch_size = 4, .block_size = 16, .seed = 4});
  CHECK(reseeded.window_starts(5) != sampler.window_starts(5));
}

TEST_CASE("token windows of all ranks in an epoch never share an input token") {
  std::vector<uint16_t> tokens(4000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = uint16_t(i % 251);
  for (int64_t replicas : {1, 2, 3, 8}) {
    CAPTURE(replicas);
    std::vector<int> owner_of_token(tokens.size(), -1);
    int64_t batches = 0;
    for (int64_t rank = 0; rank < replicas; ++rank) {
      TokenWindowSampler sampler(
          tokens,
          {.batch_size = 2, .block_size = 32, .seed = 9, .num_replicas = replicas, .rank = rank});
      batches = sampler.batches_per_epoch();
      CHECK(batches == (4000 / 32 - 1) / replicas / 2);
      for (int64_t step = 0; step < batches; ++step) {
        for (int64_t start : sampler.window_starts(step)) {
          REQUIRE(start + 33 <= 4000);
          for (int64_t t = start; t < start + 32; ++t) {
            CHECK(owner_of_token[size_t(t)] == -1);
            owner_of_token[size_t(t)] = int(rank);
          }
        }
      }
    }
    // Every rank read batches * 2 windows of 32 tokens.
    CHECK(std::count_if(owner_of_token.begin(), owner_of_token.end(),
                        [](int owner) { return owner >= 0; }) == replicas * batches * 2 * 32);
  }
}

TEST_CASE("token windows: a stream too short for one step on every rank is refused") {
  std::vector<uint16_t> tokens(100, 1);
  CHECK_THROWS_WITH_AS(
      TokenWindowSampler(tokens, {.batch_size = 4, .block_size = 16, .num_replicas = 2}),
      doctest::Contains("100 tokens give 5 windows of 16 + 1 tokens"), std::invalid_argument);
  CHECK_THROWS_AS(TokenWindowSampler(tokens, {.batch_size = 1, .block_size = 16, .rank = 1}),
                  std::invalid_argument);
}

TEST_CASE("the fortunes token file: about 2.5 MB of bytes, one document in 10 held out" *
          ZT_NEEDS_FORTUNES) {
  TempDir dir;
  std::string path = dir.file("fortunes.tokens");
  TokenFileCounts counts = prepare_fortunes_token_file(zt::testing::kFortunesDir, path, 10);
  TokenFile file(path);
  CHECK(file.counts().train_tokens == counts.train_tokens);
  uint64_t documents = counts.train_documents + counts.validation_documents;
  CHECK(documents > 10000);
  CHECK(counts.validation_documents == documents / 10);
  uint64_t tokens = counts.train_tokens + counts.validation_tokens;
  CHECK(tokens > 2000000);
  CHECK(tokens < 3000000);
  // The first fortune file in name order is "art"; its first entry opens the training stream.
  std::string art = read_bytes(std::string(zt::testing::kFortunesDir) + "/art");
  std::string first_entry = split_fortune_entries(art).front();
  CHECK(decode_bytes(file.train().subspan(0, first_entry.size())) == first_entry);
}
