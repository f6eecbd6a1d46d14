// The GPT trained through the pipeline engine on every (pipeline, data) grid the world size
// allows, with 1F1B and interleaved 1F1B, at ZeRO stages 1 and 2: after a few steps every
// stage's weights are within 1e-5 (relative) of one process training the whole GPT on the
// same global batch, and every step's loss equals that process's to 4 decimals.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "models/gpt.h"
#include "optim/sgd.h"
#include "pipeline/gpt_layers.h"
#include "pipeline/layer_checkpoint.h"
#include "pipeline/pipeline_engine.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::pipeline {
namespace {

using testing::test_world;

constexpr int kSteps = 3;
constexpr int kMicroBatches = 4;  // gradient_accumulation_steps
constexpr int64_t kRows = 2;      // sequences per micro-batch
constexpr int64_t kLength = 8;

models::GPTConfig tiny_gpt_config() {
  models::GPTConfig config;
  config.vocab_size = 32;
  config.block_size = kLength;
  config.n_layer = 6;  // 9 layers: enough for 8 stages, or 4 stages of 2 chunks
  config.n_head = 2;
  config.n_embd = 16;
  return config;
}

// Micro-batch `index` of step `step` of the global batch: tokens and next tokens.
MicroBatch micro_batch(int step, int index) {
  std::vector<int64_t> stream(size_t(kRows * (kLength + 1)));
  for (size_t i = 0; i < stream.size(); ++i)
    stream[i] = int64_t((i * i * 7 + i * 3 + size_t(step) * 5 + size_t(index) * 11) % 32);
  Tensor all = from_int64(stream, {kRows, kLength + 1});
  return {ops::contiguous(ops::narrow(all, 1, 0, kLength)),
          ops::contiguous(ops::narrow(all, 1, 1, kLength))};
}

struct Reference {
  std::vector<double> losses;
  NamedTensors weights;
};

// One process, the whole GPT, every micro-batch of the global batch (replicas x micro-batches)
// with its loss scaled by 1/count, then SGD with momentum. (Not Adam: the pipeline sums the
// same gradients in another order, and Adam would turn the rounding noise of gradients that are
// zero in exact arithmetic, such as attention's key bias, into steps of the learning rate.)
Reference train_whole_model(models::GPT& model, int replicas, int steps = kSteps) {
  std::vector<Tensor> params = model.parameters();
  optim::Sgd sgd(optim::single_group(params, 0.1, 0.0), {.momentum = 0.9});
  Reference reference;
  const int count = replicas * kMicroBatches;
  for (int step = 0; step < steps; ++step) {
    sgd.zero_grad();
    double loss_sum = 0.0;
    for (int index = 0; index < count; ++index) {
      MicroBatch batch = micro_batch(step, index);
      Tensor loss = gpt_next_token_loss(model(batch.inputs), batch.labels);
      loss_sum += loss.item();
      (loss * (1.0 / count)).backward();
    }
    sgd.step();
    reference.losses.push_back(loss_sum / count);
  }
  reference.weights = model.named_parameters();
  return reference;
}

dist::Config pipeline_config(int zero_stage, int replicas, int chunks, int interval) {
  std::string text = fmt::format(R"({{
    "train_micro_batch_size_per_gpu": {}, "gradient_accumulation_steps": {},
    "steps_per_print": 0,
    "optimizer": {{"type": "SGD", "params": {{"lr": 0.1, "momentum": 0.9}}}},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 300}},
    "pipeline": {{"partition": "uniform", "schedule": "{}", "virtual_stages": {},
                  "activation_checkpoint_interval": {}}}
  }})",
                                 kRows, kMicroBatches, zero_stage,
                                 chunks > 1 ? "interleaved" : "1f1b", chunks, interval);
  return dist::parse_config(text, "pipeline_test", replicas, nullptr);
}

double relative_difference(const Tensor& a, const Tensor& b) {
  Tensor a64 = a.to(DType::f64).contiguous(), b64 = b.to(DType::f64).contiguous();
  double largest_difference = 0.0, largest = 0.0;
  for (int64_t i = 0; i < a64.numel(); ++i) {
    largest_difference = std::max(largest_difference,
                                  std::fabs(a64.data_ptr<double>()[i] - b64.data_ptr<double>()[i]));
    largest = std::max(largest, std::fabs(b64.data_ptr<double>()[i]));
  }
  return largest_difference / std::max(largest, 1e-30);
}

// Trains on a (pipeline, data) grid and compares with the one-process run. Returns the peak
// bytes of activations this rank held during the batches.
int64_t check_against_one_process(int pipeline, int zero_stage, int chunks, int interval = 0) {
  comm::Communicator& world = test_world();
  const int replicas = world.size() / pipeline;
  CAPTURE(pipeline);
  CAPTURE(replicas);
  CAPTURE(zero_stage);
  CAPTURE(chunks);
  CAPTURE(interval);
  comm::ProcessGrid grid(world, {.data = replicas, .pipeline = pipeline});
  // The same initial weights on every rank; each stage copies its part of them.
  manual_seed(1234);
  auto whole_model = std::make_shared<models::GPT>(tiny_gpt_config());
  NamedTensors initial = whole_model->named_parameters();
  PipelineEngine engine(pipeline_config(zero_stage, replicas, chunks, interval),
                        gpt_layer_specs(tiny_gpt_config()), gpt_next_token_loss,
                        micro_batch(0, 0).inputs, grid, &initial);
  Reference reference = train_whole_model(*whole_model, replicas);
  const int replica = grid.coordinates().data;
  MemoryAccounting& accounting = cpu_allocator().accounting();
  accounting.reset_peak();
  const int64_t activations_before = accounting.stats().live(MemoryTag::activation);
  for (int step = 0; step < kSteps; ++step) {
    int next_index = replica * kMicroBatches;
    engine.pipeline_communicator().reset_stats();
    double loss = engine.train_batch([&] { return micro_batch(step, next_index++); });
    CHECK(std::fabs(loss - reference.losses[size_t(step)]) < 5e-5);
    // Per stage boundary and micro-batch (and chunk): one activation of b*s*h floats forward
    // and one gradient of the same size back. A stage sends activations unless it holds the
    // last virtual stage's chunk only, gradients unless it holds the first's.
    const comm::CommStats& sent = engine.pipeline_communicator().stats();
    const int64_t activation_bytes = kRows * kLength * tiny_gpt_config().n_embd * 4;
    const int stage = engine.stage();
    const int activation_sends = kMicroBatches * (chunks - (stage == pipeline - 1 ? 1 : 0));
    const int gradient_sends = kMicroBatches * (chunks - (stage == 0 ? 1 : 0));
    CHECK(sent[comm::CollectiveKind::send].calls == activation_sends + gradient_sends);
    CHECK(sent[comm::CollectiveKind::send].payload_bytes ==
          (activation_sends + gradient_sends) * activation_bytes);
    CHECK(sent[comm::CollectiveKind::recv].calls == activation_sends + gradient_sends);
  }
  std::map<std::string, Tensor> expected(reference.weights.begin(), reference.weights.end());
  for (const auto& [name, weight] : engine.module().whole_model_names()) {
    CAPTURE(name);
    auto found = expected.find(name == "lm_head.weight" ? "wte.weight" : name);
    REQUIRE(found != expected.end());
    CHECK(relative_difference(weight, found->second) < 1e-5);
  }
  return accounting.stats().peak(MemoryTag::activation) - activations_before;
}

TEST_CASE("pipeline_gpt_matches_one_process_on_every_grid_at_zero_1_and_2") {
  const int ranks = test_world().size();
  for (int pipeline : {2, 4, 8}) {
    if (pipeline > ranks || ranks % pipeline != 0) continue;
    for (int zero_stage : {1, 2}) check_against_one_process(pipeline, zero_stage, 1);
  }
}

TEST_CASE("interleaved_pipeline_gpt_matches_one_process") {
  const int ranks = test_world().size();
  for (int pipeline : {2, 4}) {
    if (pipeline > ranks || ranks % pipeline != 0) continue;
    check_against_one_process(pipeline, 2, 2);
  }
}

TEST_CASE("pipeline_gpt_with_activation_checkpoints_matches_one_process") {
  const int ranks = test_world().size();
  if (ranks % 2 != 0) return;
  const int64_t kept = check_against_one_process(2, 1, 1, 0);
  const int64_t checkpointed = check_against_one_process(2, 1, 1, 1);
  // Every layer a checkpoint: a stage keeps its layers' inputs, not their insides.
  CHECK(checkpointed < kept);
}

TEST_CASE("pipeline_layer_checkpoint_resumes_with_another_number_of_stages") {
  comm::Communicator& world = test_world();
  if (world.size() % 2 != 0) return;
  const std::string dir =
      (std::filesystem::temp_directory_path() / fmt::format("zt_pipeline_layers_{}", world.size()))
          .string();
  manual_seed(1234);
  auto whole_model = std::make_shared<models::GPT>(tiny_gpt_config());
  NamedTensors initial = whole_model->named_parameters();
  {
    comm::ProcessGrid grid(world, {.data = world.size() / 2, .pipeline = 2});
    PipelineEngine saved(pipeline_config(1, world.size() / 2, 1, 0),
                         gpt_layer_specs(tiny_gpt_config()), gpt_next_token_loss,
                         micro_batch(0, 0).inputs, grid, &initial);
    int next_index = grid.coordinates().data * kMicroBatches;
    saved.train_batch([&] { return micro_batch(0, next_index++); });
    saved.save_layer_checkpoint(dir);
  }
  Reference reference = train_whole_model(*whole_model, world.size() / 2, 1);
  // Resumed with every rank a stage (2, 4 or 8 stages), from fresh random weights.
  comm::ProcessGrid grid(world, {.data = 1, .pipeline = world.size()});
  PipelineEngine resumed(pipeline_config(1, 1, 1, 0), gpt_layer_specs(tiny_gpt_config()),
                         gpt_next_token_loss, micro_batch(0, 0).inputs, grid);
  resumed.load_layer_checkpoint(dir);
  std::map<std::string, Tensor> expected(reference.weights.begin(), reference.weights.end());
  for (const auto& [name, weight] : resumed.module().whole_model_names()) {
    CAPTURE(name);
    CHECK(relative_difference(weight, expected.at(name == "lm_head.weight" ? "wte.weight" : name)) <
          1e-5);
  }
  // A missing file is one error on every rank.
  world.barrier();
  if (world.rank() == 0) std::filesystem::remove(layer_state_file(dir, 1));
  world.barrier();
  CHECK_THROWS_AS(resumed.load_layer_checkpoint(dir), std::runtime_error);
  world.barrier();
  if (world.rank() == 0) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace zt::pipeline
