// The GPT's pipeline in 16 bits: bf16, and fp16 with dynamic loss scaling, each with gradient
// clipping, on (pipeline, tensor, data) grids against one process running the engine with the
// same config (the whole GPT, the same global batch as gradient_accumulation_steps
// micro-batches). 16-bit sums in another order differ by bf16's or fp16's rounding, so the
// losses are compared to 2e-2 (bf16: 8 bits of mantissa) or 2e-3 (fp16: 11 bits), and the
// weights to the same bounds relative to each tensor's largest value (or to 0.1 for a tensor
// still near zero, such as a bias after 3 steps, whose own scale is below the rounding of the
// updates); the clipping bound is below the norm at every step.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/process_grid.h"
#include "dist/engine.h"
#include "tests/largest_difference.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/pipeline_test_helpers.h"

namespace zt::pipeline {
namespace {

using namespace test_helpers;
using ::zt::testing::largest_difference;
using ::zt::testing::largest_magnitude;
using ::zt::testing::test_world;

constexpr double kClip = 0.05;

std::string precision_block(const std::string& dtype) {
  if (dtype == "bf16") return R"("bf16": {"enabled": true})";
  // A scale the tiny GPT's gradients do not overflow at, growing every 2 steps: the scaler
  // runs (and its decisions must agree between stages) without skipping steps.
  return R"("fp16": {"enabled": true, "initial_scale_power": 8, "loss_scale_window": 2})";
}

std::string config_text(const std::string& dtype, int64_t micro_batches, int zero_stage,
                        int tensor) {
  return fmt::format(R"({{
    "train_micro_batch_size_per_gpu": {}, "gradient_accumulation_steps": {},
    "steps_per_print": 0, "tensor_parallel": {{"autotp_size": {}}}, "gradient_clipping": {},
    "optimizer": {{"type": "SGD", "params": {{"lr": 0.1, "momentum": 0.9}}}},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 300}}, {},
    "pipeline": {{"partition": "uniform"}}
  }})",
                     kRows, micro_batches, tensor, kClip, zero_stage, precision_block(dtype));
}

struct Run {
  std::vector<double> losses, norms;
  std::map<std::string, Tensor> weights;  // whole, 16-bit
};

// One process: the engine over a communicator of this rank alone.
Run train_one_process(const std::string& dtype, int replicas) {
  std::unique_ptr<comm::Communicator> alone = test_world().split(test_world().rank(), 0);
  manual_seed(1234);
  auto model = std::make_shared<models::GPT>(tiny_gpt_config());
  const int count = replicas * kMicroBatches;
  dist::Engine engine(
      dist::parse_config(config_text(dtype, count, 1, 1), "one_process", 1, nullptr), model,
      *alone);
  Run run;
  for (int step = 0; step < kSteps; ++step) {
    double loss_sum = 0.0;
    for (int index = 0; index < count; ++index) {
      MicroBatch batch = micro_batch(step, index);
      Tensor loss = gpt_next_token_loss(engine.forward(batch.inputs), batch.labels);
      loss_sum += loss.to(DType::f64).item();
      engine.backward(loss);
      engine.step();
    }
    run.losses.push_back(loss_sum / count);
    run.norms.push_back(engine.get_global_grad_norm());
  }
  for (const auto& [name, weight] : engine.consolidated_state_dict()) run.weights[name] = weight;
  return run;
}

void check_16bit_pipeline(const std::string& dtype, int pipeline, int tensor, int zero_stage) {
  comm::Communicator& world = test_world();
  const int replicas = world.size() / (pipeline * tensor);
  CAPTURE(dtype);
  CAPTURE(pipeline);
  CAPTURE(tensor);
  CAPTURE(zero_stage);
  const double tolerance = dtype == "bf16" ? 2e-2 : 2e-3;
  const Run reference = train_one_process(dtype, replicas);
  comm::ProcessGrid grid(world, {.data = replicas, .pipeline = pipeline, .tensor = tensor});
  manual_seed(1234);
  NamedTensors initial = models::GPT(tiny_gpt_config()).named_parameters();
  const bool split = tensor > 1;
  PipelineEngine engine(
      dist::parse_config(config_text(dtype, kMicroBatches, zero_stage, tensor), "pipeline_test",
                         replicas * tensor, nullptr),
      split ? gpt_layer_specs(tiny_gpt_config(), grid.tensor_group())
            : gpt_layer_specs(tiny_gpt_config()),
      split ? gpt_vocab_parallel_loss(grid.tensor_group()) : LossFunction(gpt_next_token_loss),
      micro_batch(0, 0).inputs, grid, &initial);
  for (int step = 0; step < kSteps; ++step) {
    CAPTURE(step);
    int next_index = grid.coordinates().data * kMicroBatches;
    double loss = engine.train_batch([&] { return micro_batch(step, next_index++); });
    CHECK(std::fabs(loss - reference.losses[size_t(step)]) < tolerance);
    REQUIRE(reference.norms[size_t(step)] > 1.5 * kClip);  // the clipping acts
    CHECK(std::fabs(engine.engine().get_global_grad_norm() - reference.norms[size_t(step)]) <
          tolerance * reference.norms[size_t(step)]);
  }
  for (const auto& [name, weight] : engine.whole_model_weights()) {
    CAPTURE(name);
    CHECK(weight.dtype() == (dtype == "bf16" ? DType::bf16 : DType::f16));
    auto expected = reference.weights.find(name == "lm_head.weight" ? "wte.weight" : name);
    REQUIRE(expected != reference.weights.end());
    CHECK(largest_difference(weight, expected->second) <
          tolerance * std::max(largest_magnitude(expected->second), 0.1));
  }
}

TEST_CASE("bf16_and_fp16_pipelines_with_clipping_match_one_process_to_their_rounding") {
  const int ranks = test_world().size();
  if (ranks != 2 && ranks != 4 && ranks != 8) return;
  for (const std::string dtype : {"bf16", "fp16"}) {
    check_16bit_pipeline(dtype, 2, 1, 1);
    if (ranks >= 4) check_16bit_pipeline(dtype, 2, 2, 2);
  }
}

}  // namespace
}  // namespace zt::pipeline
