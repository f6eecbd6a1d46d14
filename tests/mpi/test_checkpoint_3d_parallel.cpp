// A checkpoint saved on the 3D grid (pp, tp, dp) = (2, 2, 2) of 8 ranks, by the pipeline GPT of
// tensor-parallel layers (Adam, ZeRO 1), resumed at (1, 1, 8) and at (4, 2, 1): every weight,
// made whole, is bitwise the saved one, and the next two losses equal those of the run that kept
// its layout to 4 decimals. Every layout trains on the same global batch of 8 micro-batches.
// The checkpoint read whole (as zero_to_fp32 reads it) holds the same weights. Each loading
// rank opens only the files of the saved (stage, tensor rank)s that hold its piece (at the same
// layout, its own): the files its load opened are counted against that set.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "core/safetensors.h"
#include "dist/model_parallel_checkpoint.h"
#include "models/gpt.h"
#include "pipeline/gpt_layers.h"
#include "pipeline/pipeline_engine.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/shared_scratch.h"

namespace zt::pipeline {
namespace {

namespace fs = std::filesystem;
using testing::SharedScratch;
using testing::test_world;

constexpr int kGlobalMicroBatches = 8;
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

dist::Config grid_config(int replicas, int tensor) {
  std::string text = fmt::format(R"({{
    "train_micro_batch_size_per_gpu": {}, "gradient_accumulation_steps": {},
    "steps_per_print": 0, "tensor_parallel": {{"autotp_size": {}}},
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.002}}}},
    "zero_optimization": {{"stage": 1, "reduce_bucket_size": 300}},
    "pipeline": {{"partition": "uniform"}}
  }})",
                                 kRows, kGlobalMicroBatches / replicas, tensor);
  return dist::parse_config(text, "checkpoint_3d_test", replicas * tensor, nullptr);
}

// The pipeline engine on a (pipeline, tensor, data) grid of the world, weights from `seed`.
struct Run {
  std::unique_ptr<comm::ProcessGrid> grid;
  std::unique_ptr<PipelineEngine> engine;

  Run(int stages, int tensor, uint64_t seed) {
    comm::Communicator& world = test_world();
    const int replicas = world.size() / (stages * tensor);
    grid = std::make_unique<comm::ProcessGrid>(
        world, comm::GridShape{.data = replicas, .pipeline = stages, .tensor = tensor});
    manual_seed(seed);
    models::GPT whole(tiny_gpt_config());
    NamedTensors initial = whole.named_parameters();
    const bool split = tensor > 1;
    engine = std::make_unique<PipelineEngine>(
        grid_config(replicas, tensor),
        split ? gpt_layer_specs(tiny_gpt_config(), grid->tensor_group())
              : gpt_layer_specs(tiny_gpt_config()),
        split ? gpt_vocab_parallel_loss(grid->tensor_group()) : LossFunction(gpt_next_token_loss),
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

// The files a rank of `loaded` must open to load the checkpoint saved at (2, 2, 2) in
// `tag_dir`: one model-states file to learn the saved grid (its own model-parallel rank's when
// the checkpoint has one, else rank 0's), and each (stage, tensor rank) holding part of its
// piece: the saved stages (a uniform cut of the 9 layers in 2) holding any of its layers, the
// saved tensor rank it is at tp 2 or both at tp 1; its model file and its 2 data ranks' files.
std::vector<std::string> expected_files(const std::string& tag_dir, Run& loaded) {
  const std::vector<int> saved_bounds = partition_specs(
      gpt_layer_specs(tiny_gpt_config()), {.stages = 2, .partition_method = "uniform"});
  std::set<int> stages;
  for (int layer : loaded.engine->module().chunk_layers(0))
    for (int stage = 0; stage < 2; ++stage)
      if (saved_bounds[size_t(stage)] <= layer && layer < saved_bounds[size_t(stage) + 1])
        stages.insert(stage);
  const int tensor = loaded.grid->coordinates().tensor;
  const std::set<int> tensor_ranks =
      loaded.grid->shape().tensor == 2 ? std::set<int>{tensor} : std::set<int>{0, 1};
  const int own = loaded.engine->engine().model_parallel_placement().mp_rank();
  const int probe = own < 4 ? own : 0;
  std::vector<std::string> files{dist::model_states_file(tag_dir, probe)};
  for (int stage : stages) {
    for (int tensor_rank : tensor_ranks) {
      const int mp = stage * 2 + tensor_rank;
      if (mp != probe) files.push_back(dist::model_states_file(tag_dir, mp));
      for (int data_rank = 0; data_rank < 2; ++data_rank)
        files.push_back(dist::optim_states_file(tag_dir, data_rank, mp));
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.sizes() != b.sizes() || a.dtype() != DType::f32 || b.dtype() != DType::f32) return false;
  Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr<float>(), y.data_ptr<float>(), size_t(x.numel()) * 4) == 0;
}

TEST_CASE("a_checkpoint_saved_at_2_2_2_resumes_at_1_1_8_and_4_2_1_with_bitwise_the_saved_weights") {
  comm::Communicator& world = test_world();
  if (world.size() != 8) return;
  SharedScratch scratch(world, "checkpoint-3d");
  const std::string weights_dir = scratch.path() + "/saved_weights";
  std::vector<double> continued;
  {
    Run saved(2, 2, 5);
    saved.train(0, 2);
    saved.engine->engine().save_checkpoint(scratch.path() + "/ck");
    // Each stage's weights made whole (over its tensor group), written by one rank per stage:
    // what the loaded engines must hold, taken from the parameters, not from the checkpoint.
    NamedTensors whole = saved.engine->whole_model_weights();
    if (saved.grid->coordinates().data == 0 && saved.grid->coordinates().tensor == 0) {
      fs::create_directories(weights_dir);
      save_safetensors(fmt::format("{}/stage{}.safetensors", weights_dir, saved.engine->stage()),
                       whole, {});
    }
    continued = saved.train(2, 4);
  }
  world.barrier();
  std::map<std::string, Tensor> expected;
  for (int stage = 0; stage < 2; ++stage)
    for (auto& [name, tensor] :
         load_safetensors(fmt::format("{}/stage{}.safetensors", weights_dir, stage)).tensors)
      expected[name] = tensor;
  REQUIRE(expected.count("wte.weight") == 1);
  // zero_to_fp32's reading joins the same whole model (the tied head saved as wte.weight).
  {
    dist::ConsolidatedCheckpoint whole =
        dist::read_whole_checkpoint(dist::resolve_tag_dir(scratch.path() + "/ck", ""));
    for (const auto& [name, tensor] : expected) {
      CAPTURE(name);
      const std::string saved_as = name == "lm_head.weight" ? "wte.weight" : name;
      REQUIRE(whole.fp32_params.count(saved_as) == 1);
      CHECK(bitwise_equal(whole.fp32_params.at(saved_as), tensor));
    }
    CHECK(whole.fp32_params.size() + 1 == expected.size());
  }
  struct Layout {
    int stages, tensor;
  };
  const std::string tag_dir = dist::resolve_tag_dir(scratch.path() + "/ck", "");
  for (Layout layout : {Layout{2, 2}, Layout{1, 1}, Layout{4, 2}}) {
    CAPTURE(layout.stages);
    CAPTURE(layout.tensor);
    Run loaded(layout.stages, layout.tensor, 99);  // other weights, which the load replaces
    loaded.engine->engine().load_checkpoint(scratch.path() + "/ck");
    CHECK(loaded.engine->engine().global_steps() == 2);
    std::vector<std::string> opened = loaded.engine->engine().files_read_by_last_load();
    std::sort(opened.begin(), opened.end());
    CHECK(opened == expected_files(tag_dir, loaded));
    // At the same layout: its own model file and its own (stage, tensor rank)'s two data ranks.
    if (layout.stages == 2) CHECK(opened.size() == 3);
    int compared = 0;
    for (const auto& [name, weight] : loaded.engine->whole_model_weights()) {
      CAPTURE(name);
      REQUIRE(expected.count(name) == 1);
      CHECK(bitwise_equal(weight, expected.at(name)));
      ++compared;
    }
    CHECK(compared > 0);
    std::vector<double> losses = loaded.train(2, 4);
    for (size_t step = 0; step < losses.size(); ++step) {
      CAPTURE(step);
      CHECK(std::fabs(losses[step] - continued[step]) < 5e-5);
    }
  }
}

}  // namespace
}  // namespace zt::pipeline
