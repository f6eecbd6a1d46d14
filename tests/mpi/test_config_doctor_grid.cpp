// The config doctor on (pipeline, tensor, data) grids (pipeline/config_doctor_grid.h) against
// the pipeline engine: on 4 ranks, grids (1,2,2), (2,1,2) and (2,2,1) at ZeRO 1 and 2 (3 is
// refused by pipeline stages), each rank's prediction made before anything is built is within
// 5% of what its engine measures in a training step (parameters, gradients, optimizer state,
// the activation peak), and the bytes it predicts on each axis equal the axis's counters; the
// same for Llama's layers and the interleaved schedule.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "comm/process_grid.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "models/gpt.h"
#include "pipeline/config_doctor_grid.h"
#include "pipeline/config_doctor_grid_search.h"
#include "pipeline/gpt_layers.h"
#include "pipeline/pipeline_engine.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::pipeline {
namespace {

using ::zt::testing::test_world;

constexpr int64_t kRows = 2, kMicroBatches = 4;

// What a case varies beyond the grid: Llama's layout (with kv_heads key and value heads), and
// the interleaved schedule's model chunks per stage.
struct Variant {
  bool llama = false;
  int64_t kv_heads = 0;
  int chunks = 1;
  // False where the doctor says activations are not predicted (interleaved checkpoints, or a
  // checkpoint that splits the final norm from the head).
  bool activations_predicted = true;
};

models::GPTConfig grid_gpt(const Variant& variant = {}) {
  models::GPTConfig config;
  if (variant.llama) config.architecture = models::Architecture::llama;
  config.n_kv_head = variant.kv_heads;
  config.vocab_size = 64;
  config.block_size = 16;
  config.n_layer = 4;
  config.n_head = 4;
  config.n_embd = 32;
  return config;
}

dist::Config grid_config(int zero_stage, const comm::GridShape& grid, bool bf16,
                         int checkpoint_interval = 0, int chunks = 1) {
  std::string text =
      fmt::format(R"({{
    "train_micro_batch_size_per_gpu": {}, "gradient_accumulation_steps": {},
    "steps_per_print": 0, "tensor_parallel": {{"autotp_size": {}}}, {}
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.001}}}},
    "zero_optimization": {{"stage": {}}},
    "pipeline": {{"partition": "parameters", "schedule": "{}", "virtual_stages": {},
                  "activation_checkpoint_interval": {}}}
  }})",
                  kRows, kMicroBatches, grid.tensor, bf16 ? R"("bf16": {"enabled": true},)" : "",
                  zero_stage, chunks > 1 ? "interleaved" : "1f1b", chunks, checkpoint_interval);
  return dist::parse_config(text, "doctor_grid_test", grid.data * grid.tensor, nullptr);
}

Tensor tokens(int64_t index, int64_t offset) {
  std::vector<int64_t> ids(size_t(kRows * grid_gpt().block_size));
  for (size_t i = 0; i < ids.size(); ++i)
    ids[i] = int64_t((i * 7 + size_t(index) * 13 + size_t(offset)) % 64);
  return from_int64(ids, {kRows, grid_gpt().block_size});
}

bool within(double predicted, double measured, double tolerance) {
  return std::fabs(predicted - measured) <= tolerance * std::max(std::fabs(measured), 1.0);
}

void check_grid(const comm::GridShape& shape, int zero_stage, bool bf16,
                int checkpoint_interval = 0, const Variant& variant = {}) {
  comm::ProcessGrid grid(test_world(), shape);
  const dist::Config config =
      grid_config(zero_stage, shape, bf16, checkpoint_interval, variant.chunks);
  const models::GPTConfig model = grid_gpt(variant);
  CAPTURE(variant.llama);
  CAPTURE(variant.kv_heads);
  CAPTURE(variant.chunks);
  const GridPrediction predicted = predict_grid_rank(model, config, shape, grid.coordinates());
  CAPTURE(shape.str());
  CAPTURE(zero_stage);
  CAPTURE(bf16);
  CAPTURE(grid.coordinates().pipeline);
  CAPTURE(grid.coordinates().tensor);

  // Each stage starts from its part of one whole model, which is gone before anything is
  // measured (its parameters would count as this rank's).
  std::unique_ptr<PipelineEngine> built;
  {
    manual_seed(7);
    models::GPT whole(model);
    NamedTensors initial = whole.named_parameters();
    const bool split = shape.tensor > 1;
    built = std::make_unique<PipelineEngine>(
        config, split ? gpt_layer_specs(model, grid.tensor_group()) : gpt_layer_specs(model),
        split ? gpt_vocab_parallel_loss(grid.tensor_group()) : LossFunction(gpt_next_token_loss),
        tokens(0, 0), grid, &initial);
  }
  PipelineEngine& engine = *built;
  MemoryAccounting& accounting = cpu_allocator().accounting();
  int64_t activation_peak = 0;
  for (int step = 0; step < 2; ++step) {
    grid.data_group().reset_stats();
    grid.tensor_group().reset_stats();
    grid.pipeline_group().reset_stats();
    engine.tied_communicator("embedding").reset_stats();
    accounting.reset_peak();
    const int64_t before = accounting.stats().live(MemoryTag::activation);
    int64_t next = 0;
    engine.train_batch([&] {
      const int64_t index = next++;
      return MicroBatch{tokens(index, step), tokens(index, step + 1)};
    });
    activation_peak = accounting.stats().peak(MemoryTag::activation) - before;
  }
  const dist::ModelStateReport report = engine.engine().model_state_report();
  const dist::ExpectedModelStateBytes& device = predicted.rank.model_states.device;
  MESSAGE(fmt::format(
      "{} {} kv{} c{} z{} {} p{} t{}: psi {}/{} params {}/{} grads {}/{} optim {}/{} act {}/{}",
      shape.str(), variant.llama ? "llama" : "gpt2", variant.kv_heads, variant.chunks, zero_stage,
      bf16, grid.coordinates().pipeline, grid.coordinates().tensor, predicted.parameter_count,
      report.parameter_count, device.params, report.param_bytes, device.grads, report.grad_bytes,
      device.optim_state, report.optim_state_bytes, predicted.rank.activation_bytes,
      activation_peak));
  CHECK(predicted.parameter_count == report.parameter_count);
  CHECK(within(double(device.params), double(report.param_bytes), 0.05));
  CHECK(within(double(device.grads), double(report.grad_bytes), 0.05));
  CHECK(within(double(device.optim_state), double(report.optim_state_bytes), 0.05));
  // Where the pipeline's activation checkpoints are not replayed: said, not guessed.
  if (!variant.activations_predicted)
    CHECK(predicted.rank.activation_bytes == -1);
  else
    CHECK(within(double(predicted.rank.activation_bytes), double(activation_peak), 0.05));

  // Bytes per axis, exactly: each predicted collective's payload equals its counter.
  auto check_axis = [](const char* axis, const comm::CommStats& stats,
                       const std::vector<std::pair<comm::CollectiveKind, double>>& traffic) {
    CAPTURE(axis);
    double predicted_total = 0.0;
    for (const auto& [kind, bytes] : traffic) {
      CAPTURE(comm::collective_kind_name(kind));
      CHECK(double(stats[kind].payload_bytes) == bytes);
      predicted_total += bytes;
    }
    // Nothing the prediction leaves out (a tied sum where it predicts none, say).
    CHECK(predicted_total == double(stats.total_payload_bytes()));
  };
  check_axis("data", grid.data_group().stats(), predicted.rank.traffic);
  check_axis("tensor", grid.tensor_group().stats(), predicted.tensor_traffic);
  check_axis("pipe", grid.pipeline_group().stats(), predicted.pipeline_traffic);
  check_axis("tied", engine.tied_communicator("embedding").stats(), predicted.tied_traffic);
}

TEST_CASE("doctor_predicts_each_rank_of_pipeline_tensor_data_grids") {
  if (test_world().size() != 4) return;
  for (comm::GridShape shape : {comm::GridShape{.data = 2, .pipeline = 1, .tensor = 2},
                                comm::GridShape{.data = 2, .pipeline = 2, .tensor = 1},
                                comm::GridShape{.data = 1, .pipeline = 2, .tensor = 2}})
    for (int zero_stage : {1, 2}) check_grid(shape, zero_stage, false);
  // bf16: 2-byte parameters and activations beside fp32 masters.
  check_grid({.data = 1, .pipeline = 2, .tensor = 2}, 1, true);
  check_grid({.data = 2, .pipeline = 2, .tensor = 1}, 2, true);
  // Activation checkpoints of 2 layers: every layer's forward runs again, all-reduces included;
  // the vocabulary-parallel loss outside the checkpoints. One stage's checkpoints split the
  // final norm from the head: not predicted there.
  check_grid({.data = 1, .pipeline = 2, .tensor = 2}, 1, false, 2);
  check_grid({.data = 2, .pipeline = 1, .tensor = 2}, 2, false, 2,
             {.activations_predicted = false});
}

TEST_CASE("doctor_predicts_llama_and_interleaved_pipeline_activations") {
  if (test_world().size() != 4) return;
  // Llama's layers on a pipeline (rotary tables per layer, grouped keys and values).
  check_grid({.data = 2, .pipeline = 2, .tensor = 1}, 1, false, 0, {.llama = true});
  check_grid({.data = 1, .pipeline = 4, .tensor = 1}, 2, true, 0, {.llama = true, .kv_heads = 2});
  // The interleaved schedule: two model chunks per stage, each its own part of the list.
  check_grid({.data = 2, .pipeline = 2, .tensor = 1}, 1, false, 0, {.chunks = 2});
  check_grid({.data = 1, .pipeline = 2, .tensor = 2}, 2, false, 0, {.chunks = 2});
  check_grid({.data = 2, .pipeline = 2, .tensor = 1}, 1, true, 0, {.llama = true, .chunks = 2});
}

TEST_CASE("doctor_predicts_pipeline_activation_checkpoints") {
  if (test_world().size() != 4) return;
  // Segments of 2 and 3 layers (the final norm and the head in one): each keeps its input and
  // re-runs in backward.
  check_grid({.data = 2, .pipeline = 2, .tensor = 1}, 1, false, 2);
  check_grid({.data = 1, .pipeline = 4, .tensor = 1}, 2, true, 3, {.llama = true});
  check_grid({.data = 2, .pipeline = 2, .tensor = 1}, 1, true, 2, {.llama = true, .kv_heads = 2});
  // Interleaved, they are said to be not predicted (bytes per axis still exact).
  check_grid({.data = 2, .pipeline = 2, .tensor = 1}, 2, false, 3,
             {.chunks = 2, .activations_predicted = false});
}

TEST_CASE("doctor_suggests_a_grid_that_trains_under_the_budget") {
  if (test_world().size() != 4) return;
  const models::GPTConfig model = grid_gpt();
  const dist::Config config = grid_config(1, {.data = 4, .pipeline = 1, .tensor = 1}, false);
  const int64_t reserve = 256 << 10;
  // Every grid of 4 ranks judged; a budget just over the smallest need fits that one only.
  const GridSearch all = search_grids(model, config, 4, int64_t(1) << 40, reserve);
  int64_t least = int64_t(1) << 40;
  for (const GridChoice& choice : all.considered)
    if (choice.device_bytes > 0) least = std::min(least, choice.device_bytes);
  const int64_t budget = least + least / 50;
  const GridSearch search = search_grids(model, config, 4, budget, reserve);
  MESSAGE(explain_grid_search(search, budget, reserve));
  REQUIRE(search.suggestion.has_value());
  const comm::GridShape shape = search.suggestion->grid;
  CHECK(search.suggestion->device_bytes <= budget);
  CHECK_FALSE(shape == comm::GridShape{.data = 4, .pipeline = 1, .tensor = 1});

  // The suggestion, run: two steps under a device limit of the budget on every rank.
  auto trains_within = [&](const comm::GridShape& layout) {
    comm::ProcessGrid grid(test_world(), layout);
    const dist::Config run = grid_config(1, layout, false);
    manual_seed(7);
    NamedTensors initial = models::GPT(model).named_parameters();
    MemoryAccounting& accounting = cpu_allocator().accounting();
    accounting.set_limit(accounting.stats().device_live_bytes + budget);
    bool trained = true;
    try {
      const bool split = layout.tensor > 1;
      PipelineEngine engine(
          run, split ? gpt_layer_specs(model, grid.tensor_group()) : gpt_layer_specs(model),
          split ? gpt_vocab_parallel_loss(grid.tensor_group()) : LossFunction(gpt_next_token_loss),
          tokens(0, 0), grid, &initial);
      for (int step = 0; step < 2; ++step) {
        int64_t next = 0;
        engine.train_batch([&] {
          const int64_t index = next++;
          return MicroBatch{tokens(index, step), tokens(index, step + 1)};
        });
      }
    } catch (const OutOfMemoryError&) {
      trained = false;
    }
    accounting.set_limit(0);
    return trained;
  };
  CHECK(trains_within(shape));
  // The budget binds: data parallelism alone (every rank alike) runs out of memory under it.
  CHECK_FALSE(trains_within({.data = 4, .pipeline = 1, .tensor = 1}));
}

TEST_CASE("doctor_refuses_zero_3_on_pipeline_stages") {
  const comm::GridShape shape{.data = 2, .pipeline = 2, .tensor = 1};
  CHECK_THROWS_WITH_AS(predict_grid_rank(grid_gpt(), grid_config(3, shape, false), shape, {}),
                       doctest::Contains("pipeline stages run ZeRO 0, 1 or 2"),
                       std::invalid_argument);
}

}  // namespace
}  // namespace zt::pipeline
