// The fuzz seed corpora and the inputs that once crashed a reader (tests/fuzz/<target>/), replayed
// through the fuzz targets' own functions in the normal build, so a fixed bug stays fixed without
// running `make fuzz`: valid_* parse, bad_* and crash_* are rejected with the documented error,
// and nothing escapes but those errors. Also inputs too large to commit (deep nesting).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_inputs.h"
#include "tests/error_of.h"

namespace {

using RunInput = bool (*)(std::span<const uint8_t>);

std::filesystem::path corpus_dir(const std::string& target) {
  // tests/io/this_file.cpp -> tests/fuzz/<target>, relative to where the build ran.
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "fuzz" / target;
}

std::vector<uint8_t> file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

// Runs every file of the corpus; returns how many there were.
size_t replay_corpus(const std::string& target, RunInput run) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(corpus_dir(target))) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::string name = path.filename().string();
    CAPTURE(path.string());
    std::vector<uint8_t> bytes = file_bytes(path);
    bool parsed = false;
    CHECK_NOTHROW(parsed = run(bytes));
    if (starts_with(name, "valid_")) CHECK(parsed);
    if (starts_with(name, "bad_") || starts_with(name, "crash_")) CHECK_FALSE(parsed);
  }
  return files.size();
}

std::span<const uint8_t> as_bytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// A safetensors file whose header is `header`, padded to 8 bytes, with `data_bytes` zeros after.
std::string safetensors_bytes(std::string header, size_t data_bytes = 0) {
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  for (size_t i = 0; i < 8; ++i) bytes[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return bytes + header + std::string(data_bytes, '\0');
}

}  // namespace

TEST_CASE("idx seed corpus replays: valid files parse, malformed ones are rejected") {
  CHECK(replay_corpus("idx", zt::fuzz::run_idx_input) >= 10);
}

TEST_CASE("safetensors seed corpus replays: valid files parse, malformed ones are rejected") {
  CHECK(replay_corpus("safetensors", zt::fuzz::run_safetensors_input) >= 10);
}

TEST_CASE("config seed corpus replays: no error escapes but ConfigError") {
  CHECK(replay_corpus("config", zt::fuzz::run_config_input) >= 10);
}

TEST_CASE("an empty safetensors tensor whose other sizes pass 2^63 is rejected, not laid out") {
  std::string file = safetensors_bytes(
      R"({"a":{"dtype":"F32","shape":[0,1099511627776,1099511627776],"data_offsets":[0,0]}})");
  std::string message = error_of([&] { zt::parse_safetensors(as_bytes(file), "e.st"); });
  CHECK(message ==
        "e.st: tensor 'a': shape [0, 1099511627776, 1099511627776] of F32 cannot be laid out: "
        "its nonzero sizes need more than 2^63 bytes");
}

TEST_CASE("JSON nested 100000 deep is rejected by both readers before anything recurses on it") {
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::string file = safetensors_bytes(R"({"a":{"dtype":"U8","shape":)" + deep + "}}");
  CHECK(error_of([&] { zt::parse_safetensors(as_bytes(file), "d.st"); }) ==
        "d.st: header nests deeper than 16 levels; a safetensors header needs 3");
  std::string config = R"({"train_batch_size": 8, "optimizer": {"params": )" + deep + "}}";
  // Containers 1-3 are the root, optimizer and params; the 65th is params and 62 levels of [0].
  std::string path = "optimizer.params";
  for (int level = 0; level < 62; ++level) path += "[0]";
  CHECK(error_of([&] { zt::dist::parse_config(config, "d.json", 1, nullptr); }) ==
        "d.json: " + path + ": nests deeper than 64 levels");
}
