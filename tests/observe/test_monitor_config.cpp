// The observability blocks of ds_config.json: DeepSpeed's defaults, every key read, the trace's
// step window, unknown keys rejected as DeepSpeed's pydantic models reject them, and the
// repository's observe config read whole.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "dist/config.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::dist;
using namespace zt::testing;

TEST_CASE("monitor blocks: DeepSpeed's defaults when absent") {
  Config defaults = parse(with_batch(""));
  const observe::ObserveConfig& observe = defaults.observe;
  CHECK(!observe.trace.enabled);
  CHECK(!observe.comms_logger.enabled);
  CHECK(observe.comms_logger.prof_all);
  CHECK(!observe.comms_logger.verbose);
  CHECK(observe.flops_profiler.profile_step == 1);
  CHECK(observe.flops_profiler.module_depth == -1);
  CHECK(observe.flops_profiler.top_modules == 1);
  CHECK(observe.flops_profiler.detailed);
  CHECK(observe.csv_monitor.job_name == "DeepSpeedJobName");
  CHECK(!observe.memory_breakdown);
}

TEST_CASE("monitor blocks: every key is read") {
  Config config = parse(with_batch(R"(
    "trace": {"enabled": true, "output_path": "t", "steps": "4:7"},
    "comms_logger": {"enabled": true, "verbose": true, "prof_all": false,
                     "prof_ops": ["all_reduce", "all_gather"], "debug": true},
    "flops_profiler": {"enabled": true, "recompute_fwd_factor": 1.0, "profile_step": 3,
                       "module_depth": 2, "top_modules": 4, "detailed": false,
                       "output_file": "f.txt"},
    "csv_monitor": {"enabled": true, "output_path": "logs", "job_name": "run1"},
    "memory_breakdown": true)"));
  const observe::ObserveConfig& observe = config.observe;
  CHECK(observe.trace.enabled);
  CHECK(observe.trace.output_path == "t");
  CHECK(observe.trace.first_step == 4);
  CHECK(observe.trace.last_step == 7);
  CHECK(observe.comms_logger.verbose);
  CHECK(!observe.comms_logger.prof_all);
  CHECK(observe.comms_logger.prof_ops == std::vector<std::string>{"all_reduce", "all_gather"});
  CHECK(observe.comms_logger.debug);
  CHECK(observe.flops_profiler.recompute_fwd_factor == 1.0);
  CHECK(observe.flops_profiler.profile_step == 3);
  CHECK(observe.flops_profiler.module_depth == 2);
  CHECK(observe.flops_profiler.top_modules == 4);
  CHECK(!observe.flops_profiler.detailed);
  CHECK(observe.flops_profiler.output_file == "f.txt");
  CHECK(observe.csv_monitor.output_path == "logs");
  CHECK(observe.csv_monitor.job_name == "run1");
  CHECK(observe.memory_breakdown);
  CHECK(parse(with_batch(R"("trace": {"steps": 5})")).observe.trace.last_step == 5);
}

TEST_CASE("monitor blocks: bad values and unknown keys are errors naming the key") {
  CHECK(error_of(with_batch(R"("trace": {"steps": "5:2"})")) ==
        "ds_config.json: trace.steps: expected \"A:B\" (training steps A to B, 1 <= A <= B) or "
        "a step number, got \"5:2\"");
  CHECK(contains(error_of(with_batch(R"("trace": {"steps": "x"})")), "trace.steps: expected"));
  CHECK(contains(error_of(with_batch(R"("trace": {"steps": 0})")), "trace.steps: expected"));
  CHECK(error_of(with_batch(R"("comms_logger": {"prof_ops": ["allreduce"]})")) ==
        "ds_config.json: comms_logger.prof_ops: expected names among all_reduce, "
        "reduce_scatter, all_gather, broadcast, reduce, barrier, send, recv; got \"allreduce\"");
  CHECK(contains(error_of(with_batch(R"("csv_monitor": {"enabeld": true})")),
                 "csv_monitor.enabeld: unknown key (DeepSpeed rejects it)"));
  CHECK(contains(error_of(with_batch(R"("flops_profiler": {"module_depth": -2})")),
                 "flops_profiler.module_depth: expected an integer >= -1, got -2"));
  CHECK(contains(error_of(with_batch(R"("tensorboard": {"enabled": true, "job_name": ""})")),
                 "tensorboard.job_name: expected a non-empty name (the folder of the files)"));
  CHECK(contains(error_of(with_batch(R"("memory_breakdown": 1)")),
                 "memory_breakdown: expected true or false, got 1"));
}

TEST_CASE("configs/ds_config_observe.json is read without a warning") {
  std::vector<std::string> warnings;
  Config config =
      load_config((repository_configs() / "ds_config_observe.json").string(), 4, &warnings);
  CHECK(warnings.empty());
  CHECK(config.observe.trace.first_step == 3);
  CHECK(config.observe.flops_profiler.profile_step == 2);
  CHECK(config.observe.csv_monitor.job_name == "mnist_stage3");
}
