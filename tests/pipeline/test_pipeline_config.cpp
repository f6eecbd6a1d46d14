// ds_config.json's pipeline block: DeepSpeed's keys and defaults, the PipelineModule arguments
// and the schedule, and one line naming the key for each bad value.
#include <doctest/doctest.h>

#include "tests/dist/config_test_helpers.h"

namespace zt::testing {
namespace {

TEST_CASE("pipeline_block_reads_deepspeed_keys_and_the_schedule") {
  Config absent = parse(with_batch(""));
  CHECK_FALSE(absent.pipeline.present);
  CHECK(absent.pipeline.stages == 0);
  CHECK(absent.pipeline.partition_method == "parameters");
  CHECK(absent.pipeline.schedule == "1f1b");
  Config config = parse(with_batch(
      R"("pipeline": {"stages": 4, "partition": "type:GPT2Block", "seed_layers": false,
          "activation_checkpoint_interval": 2, "pipe_partitioned": true,
          "grad_partitioned": false, "schedule": "interleaved", "virtual_stages": 2})"));
  CHECK(config.pipeline.present);
  CHECK(config.pipeline.stages == 4);
  CHECK(config.pipeline.partition_method == "type:GPT2Block");
  CHECK(config.pipeline.activation_checkpoint_interval == 2);
  CHECK_FALSE(config.pipeline.grad_partitioned);
  CHECK(config.pipeline.schedule == "interleaved");
  CHECK(config.pipeline.virtual_stages == 2);
  // DeepSpeed's defaults: "auto" stages and "best" partitioning.
  std::vector<std::string> warnings;
  Config defaults =
      parse(with_batch(R"("pipeline": {"stages": "auto", "partition": "best"})"), 1, &warnings);
  CHECK(defaults.pipeline.stages == 0);
  CHECK(defaults.pipeline.partition_method == "parameters");
}

TEST_CASE("pipeline_block_bad_values_name_the_key") {
  CHECK(error_of(with_batch(R"("pipeline": {"stages": 0})")) ==
        "ds_config.json: pipeline.stages: expected an integer >= 1, got 0");
  CHECK(error_of(with_batch(R"("pipeline": {"partition": "balanced"})")) ==
        "ds_config.json: pipeline.partition: expected \"parameters\", \"uniform\", \"best\" or "
        "\"type:REGEX\", got \"balanced\"");
  CHECK(contains(error_of(with_batch(R"("pipeline": {"partition": "type:(["})")),
                 "pipeline.partition: \"([\": the pattern is not a regular expression"));
  CHECK(error_of(with_batch(R"("pipeline": {"schedule": "gpipe"})")) ==
        "ds_config.json: pipeline.schedule: expected one of \"1f1b\", \"interleaved\", got "
        "\"gpipe\"");
  CHECK(error_of(with_batch(R"("pipeline": {"virtual_stages": 2})")) ==
        "ds_config.json: pipeline.virtual_stages: 2 model chunks per stage need \"schedule\": "
        "\"interleaved\"");
}

}  // namespace
}  // namespace zt::testing
