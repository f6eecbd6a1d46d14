// ds_config.json's offload blocks and aio: DeepSpeed's defaults, each key read, the rules
// against the stage, one-line errors naming the key, and DeepSpeed's own offload examples
// (tests/dist/fixtures/ds_*offload*.json, ds_zero_infinity_nvme.json) loading as written.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "dist/config.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::dist;
using namespace zt::testing;

namespace {

std::string zero_block(const std::string& members) {
  return with_batch("\"zero_optimization\": {" + members + "}");
}

std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(__FILE__).parent_path() / "fixtures" / name;
}

}  // namespace

TEST_CASE("offload blocks: DeepSpeed's defaults, and every key read") {
  Config defaults = parse(zero_block("\"stage\": 3"));
  const ZeroConfig& unset = defaults.zero_optimization;
  CHECK(!unset.offload_optimizer.enabled());
  CHECK(unset.offload_optimizer.buffer_count == 4);
  CHECK(unset.offload_param.buffer_count == 5);
  CHECK(unset.offload_param.buffer_size == 100'000'000);
  CHECK(unset.offload_param.max_in_cpu == 1'000'000'000);
  CHECK(unset.sub_group_size == 1'000'000'000);
  CHECK(defaults.aio.block_size == 1'048'576);
  CHECK(defaults.aio.queue_depth == 8);

  std::vector<std::string> warnings;
  Config set = parse(zero_block(R"("stage": 3, "sub_group_size": 4096,
      "offload_optimizer": {"device": "nvme", "nvme_path": "/tmp/a", "buffer_count": 6,
        "pin_memory": true, "pipeline_read": true, "pipeline_write": true, "fast_init": true,
        "ratio": 1.0},
      "offload_param": {"device": "cpu", "buffer_count": 7, "buffer_size": 1000,
        "max_in_cpu": 0, "pin_memory": true}}, "aio": {"block_size": 4096, "queue_depth": 2,
      "intra_op_parallelism": 3, "single_submit": true, "overlap_events": false)"),
                     1, &warnings);
  CHECK(warnings.empty());
  const ZeroConfig& zero = set.zero_optimization;
  CHECK(zero.sub_group_size == 4096);
  CHECK(zero.offload_optimizer.to_nvme());
  CHECK(zero.offload_optimizer.nvme_path == "/tmp/a");
  CHECK(zero.offload_optimizer.buffer_count == 6);
  CHECK(zero.offload_optimizer.pin_memory);
  CHECK(zero.offload_optimizer.pipeline_read);
  CHECK(zero.offload_optimizer.pipeline_write);
  CHECK(zero.offload_optimizer.fast_init);
  CHECK(zero.offload_param.device == "cpu");
  CHECK(zero.offload_param.buffer_count == 7);
  CHECK(zero.offload_param.buffer_size == 1000);
  CHECK(zero.offload_param.max_in_cpu == 0);
  CHECK(set.aio.block_size == 4096);
  CHECK(set.aio.queue_depth == 2);
  CHECK(set.aio.intra_op_parallelism == 3);
  CHECK(set.aio.single_submit);
  CHECK(!set.aio.overlap_events);
}

TEST_CASE("offload blocks: the old cpu_offload booleans mean device cpu") {
  Config old =
      parse(zero_block("\"stage\": 3, \"cpu_offload\": true, \"cpu_offload_param\": true"));
  CHECK(old.zero_optimization.offload_optimizer.device == "cpu");
  CHECK(old.zero_optimization.offload_param.device == "cpu");
  Config off = parse(zero_block("\"stage\": 2, \"cpu_offload\": false"));
  CHECK(!off.zero_optimization.offload_optimizer.enabled());
  CHECK(contains(error_of(zero_block("\"stage\": 2, \"cpu_offload\": true, "
                                     "\"offload_optimizer\": {\"device\": \"cpu\"}")),
                 "zero_optimization.cpu_offload: deprecated; set it or \"offload_optimizer\""));
  CHECK(error_of(zero_block("\"stage\": 2, \"cpu_offload_param\": true")) ==
        "ds_config.json: zero_optimization.cpu_offload_param: offloading parameters needs ZeRO "
        "stage 3 (zero_optimization.stage is 2)");
}

TEST_CASE("offload blocks: each rule is a one-line error naming the key") {
  CHECK(error_of(zero_block("\"stage\": 0, \"offload_optimizer\": {\"device\": \"cpu\"}")) ==
        "ds_config.json: zero_optimization.offload_optimizer.device: offloading the optimizer "
        "needs ZeRO stage 1, 2 or 3 (zero_optimization.stage is 0)");
  CHECK(error_of(zero_block("\"stage\": 2, \"offload_param\": {\"device\": \"cpu\"}")) ==
        "ds_config.json: zero_optimization.offload_param.device: offloading parameters needs "
        "ZeRO stage 3 (zero_optimization.stage is 2)");
  CHECK(error_of(zero_block("\"stage\": 3, \"offload_param\": {\"device\": \"nvme\"}")) ==
        "ds_config.json: zero_optimization.offload_param.nvme_path: device \"nvme\" needs "
        "\"nvme_path\" (the folder of swap files)");
  CHECK(contains(error_of(zero_block("\"stage\": 1, \"offload_optimizer\": {\"device\": "
                                     "\"nvme\", \"nvme_path\": \"\"}")),
                 "zero_optimization.offload_optimizer.nvme_path: expected a folder path"));
  CHECK(contains(error_of(zero_block("\"stage\": 3, \"offload_optimizer\": {\"ratio\": 0}")),
                 "zero_optimization.offload_optimizer.ratio: expected a number in (0, 1]"));
  CHECK(contains(error_of(zero_block("\"stage\": 3, \"offload_optimizer\": {\"ratio\": 1.5}")),
                 "zero_optimization.offload_optimizer.ratio: expected a number in (0, 1]"));
  CHECK(error_of(zero_block("\"stage\": 2, \"offload_optimizer\": {\"device\": \"cpu\", "
                            "\"ratio\": 0.5}")) ==
        "ds_config.json: zero_optimization.offload_optimizer.ratio: 0.5 < 1 (partial offload) "
        "needs ZeRO stage 3");
  CHECK(contains(error_of(zero_block("\"stage\": 3, \"offload_optimizer\": {\"device\": \"cpu\", "
                                     "\"ratio\": 0.5}")),
                 "ratio: 0.5 < 1 (partial offload) is not implemented yet"));
  CHECK(contains(error_of(zero_block("\"stage\": 3, \"offload_optimizer\": {\"buffer_count\": 0}")),
                 "zero_optimization.offload_optimizer.buffer_count: expected an integer >= 1"));
  CHECK(contains(error_of(zero_block("\"stage\": 3, \"offload_param\": {\"buffer_size\": -1}")),
                 "zero_optimization.offload_param.buffer_size: expected an integer >= 1"));
  CHECK(contains(error_of(zero_block("\"stage\": 3, \"offload_param\": {\"max_in_cpu\": -1}")),
                 "zero_optimization.offload_param.max_in_cpu: expected an integer >= 0"));
  CHECK(contains(error_of(zero_block("\"stage\": 3, \"sub_group_size\": 0")),
                 "zero_optimization.sub_group_size: expected an integer >= 1"));
  CHECK(contains(error_of(zero_block("\"stage\": 3, \"offload_optimizer\": {\"device\": \"gpu\"}")),
                 "zero_optimization.offload_optimizer.device: expected one of \"none\", \"cpu\""));
  CHECK(contains(error_of(zero_block("\"stage\": 3, \"offload_param\": {\"max_in_gpu\": 1}")),
                 "zero_optimization.offload_param.max_in_gpu: unknown key"));
  CHECK(contains(error_of(with_batch("\"aio\": {\"queue_depth\": 0}")),
                 "aio.queue_depth: expected an integer >= 1"));
  CHECK(
      contains(error_of(with_batch("\"aio\": {\"thread_count\": 2, \"intra_op_parallelism\": 2}")),
               "aio.thread_count: the docs' name of \"intra_op_parallelism\""));
}

TEST_CASE("DeepSpeed's offload examples load as its docs write them") {
  std::vector<std::string> warnings;
  Config zero3 = load_config(fixture("ds_zero3_offload_cpu.json").string(), 2, &warnings);
  CHECK(warnings.empty());
  CHECK(zero3.zero_optimization.stage == 3);
  CHECK(zero3.zero_optimization.offload_optimizer.device == "cpu");
  CHECK(zero3.zero_optimization.offload_param.device == "cpu");

  Config infinity = load_config(fixture("ds_zero_infinity_nvme.json").string(), 4, &warnings);
  CHECK(warnings.empty());
  CHECK(infinity.zero_optimization.offload_optimizer.to_nvme());
  CHECK(infinity.zero_optimization.offload_param.nvme_path == "/local_nvme");
  CHECK(infinity.zero_optimization.offload_param.buffer_size == 100'000'000);
  CHECK(infinity.aio.intra_op_parallelism == 1);

  Config zero2 = load_config(fixture("ds_zero2_cpu_offload.json").string(), 1, &warnings);
  CHECK(warnings.empty());
  CHECK(zero2.zero_optimization.offload_optimizer.device == "cpu");
  CHECK(!zero2.zero_optimization.offload_param.enabled());
}
