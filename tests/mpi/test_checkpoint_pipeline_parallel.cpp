// Engine checkpoints of the pipeline GPT in DeepSpeed's pipeline layout: layer files per layer,
// a model-states file per stage and an optimizer file per (data rank, stage). Saved at pp 2
// (Adam, ZeRO 1) and resumed at pp 2: bitwise the losses and weights of the run that was not
// stopped. Loaded at pp 1 and pp 4 (the data axis takes the rest of the world, the global batch
// stays the same): each stage's weights bitwise those in the saved layer files, and the
// continued losses equal to the uninterrupted run's to 4 decimals.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "core/safetensors.h"
#include "dist/checkpoint_files.h"
#include "models/gpt.h"
#include "pipeline/gpt_layers.h"
#include "pipeline/layer_checkpoint.h"
#include "pipeline/pipeline_engine.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/shared_scratch.h"

namespace zt::pipeline {
namespace {

namespace fs = std::filesystem;
using testing::SharedScratch;
using testing::test_world;

constexpr int kGlobalMicroBatches = 8;  // replicas x gradient_accumulation_steps, every layout
constexpr int64_t kRows = 2, kLength = 8;

models::GPTConfig tiny_gpt_config() {
  models::GPTConfig config;
  config.vocab_size = 32;
  config.block_size = kLength;
  config.n_layer = 6;  // 9 pipeline layers
  config.n_head = 2;
  config.n_embd = 16;
  return config;
}

MicroBatch micro_batch(int step, int index) {
  std::vector<int64_t> stream(size_t(kRows * (kLength + 1)));
  for (size_t i = 0; i < stream.size(); ++i)
    stream[i] = int64_t((i * i * 7 + i * 3 + size_t(step) * 5 + size_t(index) * 11) % 32);
  Tensor all = from_int64(stream, {kRows, kLength + 1});
  return {ops::contiguous(ops::narrow(all, 1, 0, kLength)),
          ops::contiguous(ops::narrow(all, 1, 1, kLength))};
}

dist::Config pipeline_config(int replicas) {
  std::string text = fmt::format(R"({{
    "train_micro_batch_size_per_gpu": {}, "gradient_accumulation_steps": {},
    "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.002}}}},
    "zero_optimization": {{"stage": 1, "reduce_bucket_size": 300}},
    "pipeline": {{"partition": "uniform"}}
  }})",
                                 kRows, kGlobalMicroBatches / replicas);
  return dist::parse_config(text, "pipeline_checkpoint_test", replicas, nullptr);
}

// A pipeline engine with `stages` stages over the world, its weights from a GPT drawn from `seed`.
struct Run {
  std::unique_ptr<comm::ProcessGrid> grid;
  std::unique_ptr<PipelineEngine> engine;

  Run(int stages, uint64_t seed) {
    comm::Communicator& world = test_world();
    const int replicas = world.size() / stages;
    grid = std::make_unique<comm::ProcessGrid>(
        world, comm::GridShape{.data = replicas, .pipeline = stages});
    manual_seed(seed);
    models::GPT whole(tiny_gpt_config());
    NamedTensors initial = whole.named_parameters();
    engine = std::make_unique<PipelineEngine>(
        pipeline_config(replicas), gpt_layer_specs(tiny_gpt_config()), gpt_next_token_loss,
        micro_batch(0, 0).inputs, *grid, &initial);
  }

  std::vector<double> train(int first, int last) {
    const int per_replica = kGlobalMicroBatches / grid->shape().data;
    std::vector<double> losses;
    for (int step = first; step < last; ++step) {
      int next = grid->coordinates().data * per_replica;
      losses.push_back(engine->train_batch([&] { return micro_batch(step, next++); }));
    }
    return losses;
  }
};

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.sizes() != b.sizes() || a.dtype() != DType::f32 || b.dtype() != DType::f32) return false;
  Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr<float>(), y.data_ptr<float>(), size_t(x.numel()) * 4) == 0;
}

// Every layer of this rank's stage against the layer files of `tag_dir` (what the saving
// stages wrote from their parameters, not from the optimizer files the load reads).
void check_weights_are_the_saved_layer_files(PipelineEngine& engine, const std::string& tag_dir) {
  PipelineModule& module = engine.module();
  int checked = 0;
  for (int index : module.chunk_layers(0)) {
    SafetensorsContents saved = load_safetensors(layer_state_file(tag_dir, index, 0));
    for (const auto& [name, parameter] : module.layer(index)->named_parameters()) {
      CAPTURE(index);
      CAPTURE(name);
      REQUIRE(saved.contains(name));
      CHECK(bitwise_equal(parameter.detach(), saved.at(name)));
      ++checked;
    }
  }
  CHECK(checked > 0);
}

TEST_CASE("pipeline_checkpoint_resumes_bitwise_and_loads_at_pp_1_and_pp_4") {
  comm::Communicator& world = test_world();
  if (world.size() != 4 && world.size() != 8) return;
  SharedScratch scratch(world, "pp-checkpoint");
  Run straight(2, 5);
  const std::vector<double> straight_losses = straight.train(0, 4);
  std::string tag_dir;
  {
    Run first(2, 5);
    std::vector<double> losses = first.train(0, 2);
    CHECK(losses == std::vector<double>(straight_losses.begin(), straight_losses.begin() + 2));
    tag_dir = first.engine->engine().save_checkpoint(scratch.path());
  }
  // DeepSpeed's names: mp rank = stage (tp 1); layer files with the tensor rank.
  const int replicas = world.size() / 2;
  for (int stage = 0; stage < 2; ++stage) {
    CHECK(fs::exists(dist::model_states_file(tag_dir, stage)));
    for (int data_rank = 0; data_rank < replicas; ++data_rank)
      CHECK(fs::exists(dist::optim_states_file(tag_dir, data_rank, stage)));
  }
  for (int layer = 0; layer < 9; ++layer) CHECK(fs::exists(layer_state_file(tag_dir, layer, 0)));
  {
    Run resumed(2, 77);
    resumed.engine->engine().load_checkpoint(scratch.path());
    check_weights_are_the_saved_layer_files(*resumed.engine, tag_dir);
    CHECK(resumed.train(2, 4) ==
          std::vector<double>(straight_losses.begin() + 2, straight_losses.end()));
    // The same stage of the straight run holds bitwise the same weights.
    for (const auto& [name, weight] : resumed.engine->module().named_parameters()) {
      CAPTURE(name);
      bool found = false;
      for (const auto& [other, straight_weight] : straight.engine->module().named_parameters())
        if (other == name) found = bitwise_equal(weight.detach(), straight_weight.detach());
      CHECK(found);
    }
  }
  for (int stages : {1, 4}) {
    CAPTURE(stages);
    Run loaded(stages, 77);
    loaded.engine->engine().load_checkpoint(scratch.path());
    CHECK(loaded.engine->engine().global_steps() == 2);
    check_weights_are_the_saved_layer_files(*loaded.engine, tag_dir);
    std::vector<double> losses = loaded.train(2, 4);
    for (size_t step = 0; step < losses.size(); ++step) {
      CAPTURE(step);
      CHECK(std::fabs(losses[step] - straight_losses[step + 2]) < 5e-5);
    }
  }
  // A missing stage file: one line naming it, on every rank.
  world.barrier();
  if (world.rank() == 0) fs::remove(dist::model_states_file(tag_dir, 1));
  world.barrier();
  Run other(4, 77);
  try {
    other.engine->engine().load_checkpoint(scratch.path());
    FAIL("no error");
  } catch (const std::runtime_error& error) {
    CHECK(std::string(error.what()) ==
          dist::model_states_file(tag_dir, 1) +
              ": missing (the checkpoint was saved with 2 pipeline stages x tensor size 1)");
  }
}

}  // namespace
}  // namespace zt::pipeline
