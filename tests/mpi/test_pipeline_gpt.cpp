// The GPT trained through the pipeline engine on every (pipeline, data) grid the world size
// allows, with 1F1B and interleaved 1F1B, at ZeRO stages 1 and 2: after a few steps every
// stage's weights are within 1e-5 (relative) of one process training the whole GPT on the
// same global batch, and every step's loss equals that process's to 4 decimals.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "comm/process_grid.h"
#include "core/generator.h"
#include "models/gpt.h"
#include "pipeline/gpt_layers.h"
#include "pipeline/layer_checkpoint.h"
#include "pipeline/pipeline_engine.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/pipeline_test_helpers.h"

namespace zt::pipeline {
namespace {

using namespace test_helpers;
using testing::test_world;

int64_t check_against_one_process(int pipeline, int zero_stage, int chunks, int interval = 0) {
  return test_helpers::check_against_one_process(
      {.pipeline = pipeline, .zero_stage = zero_stage, .chunks = chunks, .interval = interval});
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
