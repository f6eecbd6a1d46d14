// ds_config.json: every problem of a config is reported at once (one line each), with the
// warnings that came before them, and a problem in one section does not hide the next.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "dist/config.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::dist;
using namespace zt::testing;

namespace {

// The ConfigError `text` produces; fails the test when there is none.
ConfigError problems_of(const std::string& text, std::vector<std::string>* warnings = nullptr) {
  std::vector<std::string> ignored;
  try {
    parse_config(text, "ds_config.json", 1, warnings ? warnings : &ignored);
  } catch (const ConfigError& error) {
    return error;
  }
  FAIL("the config was accepted");
  return ConfigError("unreachable");
}

size_t line_count(const std::string& text) {
  size_t lines = 1;
  for (char c : text) lines += c == '\n' ? 1 : 0;
  return lines;
}

}  // namespace

TEST_CASE("a config with five problems reports five lines, warnings kept apart") {
  std::vector<std::string> warnings;
  ConfigError error = problems_of(R"({
    "train_batch_size": "16",
    "gradient_clipping": -1,
    "optimizer": {"type": "Adam", "params": {"lr": "fast"}},
    "zero_optimization": {"stage": 5},
    "fp16": {"enabled": "yes"},
    "wall_clock_breakdwn": true
  })",
                                  &warnings);
  const std::vector<std::string> expected = {
      "ds_config.json: train_batch_size: expected an integer >= 1, got \"16\"",
      "ds_config.json: gradient_clipping: expected a number >= 0, got -1",
      "ds_config.json: optimizer.params.lr: expected a number >= 0, got \"fast\"",
      "ds_config.json: zero_optimization.stage: expected 0..3, got 5",
      "ds_config.json: fp16.enabled: expected true or false, got \"yes\"",
  };
  CHECK(error.errors() == expected);
  CHECK(line_count(error.what()) == 5);
  // The unknown key's warning is given (to the caller's list and with the error), not dropped.
  REQUIRE(warnings.size() == 1);
  CHECK(contains(warnings[0], "wall_clock_breakdwn: unknown key, ignored"));
  CHECK(error.warnings() == warnings);
}

TEST_CASE("a problem that ends its section leaves the other sections read") {
  // An unknown optimizer type ends the optimizer block; the scheduler and zero blocks after it
  // are still read and their problems reported.
  ConfigError error = problems_of(with_batch(R"("optimizer": {"type": "Adamm"},
      "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": -3}},
      "zero_optimization": {"stage": 1, "allgather_bucket_size": 7, "reduce_bucket_size": 0})"));
  REQUIRE(error.errors().size() == 4);
  CHECK(contains(error.errors()[0], "optimizer.type: unknown optimizer \"Adamm\""));
  CHECK(contains(error.errors()[1], "scheduler.params.warmup_num_steps: expected an integer"));
  CHECK(contains(error.errors()[2], "zero_optimization.reduce_bucket_size: expected an integer"));
  CHECK(contains(error.errors()[3], "zero_optimization.allgather_bucket_size: expected an even"));
}

TEST_CASE("one problem is one line, as before") {
  ConfigError error = problems_of(with_batch("\"steps_per_print\": -1"));
  CHECK(error.errors().size() == 1);
  CHECK(std::string(error.what()) ==
        "ds_config.json: steps_per_print: expected an integer >= 0, got -1");
  // A rejected batch key is not reported a second time as a missing batch size.
  CHECK(problems_of(R"({"train_micro_batch_size_per_gpu": 0})").errors().size() == 1);
}
