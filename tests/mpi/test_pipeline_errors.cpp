// What a pipeline cannot be built from, each refused with one line that every rank throws
// alike (no rank is left waiting): more stages than layers, a stage whose layers cannot take
// the previous stage's outputs (found by the shape probe at build time), ZeRO stage 3.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <string>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "nn/linear.h"
#include "pipeline/pipeline_engine.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::pipeline {
namespace {

using testing::test_world;

LayerSpec linear_spec(int64_t in, int64_t out) {
  return {.type_name = "Linear",
          .build = [in, out] { return std::make_shared<nn::Linear>(in, out); }};
}

dist::Config config_for(int replicas, int zero_stage) {
  std::string text = fmt::format(R"({{
    "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "steps_per_print": 0,
    "optimizer": {{"type": "SGD", "params": {{"lr": 0.1}}}},
    "zero_optimization": {{"stage": {}}}, "pipeline": {{"partition": "uniform"}}
  }})",
                                 zero_stage);
  return dist::parse_config(text, "pipeline_errors", replicas, nullptr);
}

// The message PipelineEngine's constructor throws on this rank, or "(no error)".
std::string build_error(const LayerSpecs& specs, int zero_stage = 1) {
  comm::Communicator& world = test_world();
  comm::ProcessGrid grid(world, {.data = 1, .pipeline = world.size()});
  try {
    PipelineEngine engine(
        config_for(1, zero_stage), specs,
        [](const Tensor& outputs, const Tensor& labels) { return mse_loss(outputs, labels); },
        zeros({2, 4}), grid);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "(no error)";
}

TEST_CASE("pipeline_with_more_stages_than_layers_is_one_line_on_every_rank") {
  const int ranks = test_world().size();
  if (ranks < 2) return;
  CHECK(build_error({linear_spec(4, 4)}) ==
        fmt::format("pipeline: 1 layers cannot fill {} stages: each stage (and each model chunk "
                    "of an interleaved stage) needs at least one layer",
                    ranks));
}

TEST_CASE("pipeline_stage_that_cannot_take_the_previous_outputs_is_found_at_build_time") {
  const int ranks = test_world().size();
  if (ranks < 2) return;
  // One layer per stage; the second expects 6 features where the first gives 8.
  LayerSpecs specs{linear_spec(4, 8), linear_spec(6, 6)};
  for (int stage = 2; stage < ranks; ++stage) specs.push_back(linear_spec(6, 6));
  std::string error = build_error(specs);
  CHECK(error.starts_with(
      "pipeline: stage 1 (layers 1-1, the first a Linear) cannot take the output of stage 0, "
      "f32 [2, 8]: "));
  CHECK(error.find('\n') == std::string::npos);
  // The same layers that fit build (and the probe leaves every rank ready for the next test).
  specs[1] = linear_spec(8, 6);
  CHECK(build_error(specs) == "(no error)");
}

TEST_CASE("pipeline_refuses_zero_stage_3_with_one_line") {
  const int ranks = test_world().size();
  LayerSpecs specs;
  for (int stage = 0; stage < ranks; ++stage) specs.push_back(linear_spec(4, 4));
  CHECK(build_error(specs, 3) ==
        "pipeline_errors: zero_optimization.stage: 3 partitions the parameters, which pipeline "
        "stages do not gather; use stage 0, 1 or 2 with pipeline parallelism");
}

}  // namespace
}  // namespace zt::pipeline
