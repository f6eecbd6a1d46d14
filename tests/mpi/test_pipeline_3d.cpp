// The GPT on full (pipeline, tensor, data) grids: pipeline stages built from tensor-parallel
// layers, ZeRO 1 and 2 over the data axis, 5 steps in fp32 against one process training the
// whole GPT on the same global batch: every step's loss equal to 4 decimals, every weight
// (shards joined over the tensor group) within 1e-5 relative, the pipeline axis carrying
// exactly one activation and one gradient of b*s*h per micro-batch per boundary (1/tp of it per
// tensor rank with partitioned transfers, plus their all-gathers on the tensor axis), and the
// tensor axis exactly two all-reduces of b*s*h per block each way (tests/mpi/
// pipeline_test_helpers.h). Llama's split layers as stages, and both models with sequence
// parallelism. Also interleaved and with activation checkpoints. And what a
// 3D grid cannot be built from, each one line that every rank throws alike (no rank waits).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "comm/process_grid.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/pipeline_test_helpers.h"

namespace zt::pipeline {
namespace {

using namespace test_helpers;
using ::zt::testing::test_world;

constexpr int kSteps3D = 5;

struct Axes {
  int pipeline, tensor;
};

// The grids with a tensor axis the world allows: on 8 ranks (2,2,2), (4,2,1) and (1,2,4); on 4
// ranks (2,2,1) and (1,2,2); on 2 ranks (1,2,1).
std::vector<Axes> tensor_grids(int ranks) {
  if (ranks == 8) return {{2, 2}, {4, 2}, {1, 2}};
  if (ranks == 4) return {{2, 2}, {1, 2}};
  if (ranks == 2) return {{1, 2}};
  return {};
}

TEST_CASE("gpt_on_pipeline_tensor_data_grids_matches_one_process_at_zero_1_and_2") {
  for (Axes axes : tensor_grids(test_world().size()))
    for (int zero_stage : {1, 2}) {
      // One stage is the tensor-parallel engine's case (test_tensor_parallel_engine.cpp tests
      // its ZeRO stages): here once, through the pipeline engine.
      if (axes.pipeline == 1 && zero_stage == 1) continue;
      check_against_one_process({.pipeline = axes.pipeline,
                                 .tensor = axes.tensor,
                                 .zero_stage = zero_stage,
                                 .steps = kSteps3D});
    }
}

TEST_CASE("interleaved_and_checkpointed_3d_pipelines_match_one_process") {
  if (test_world().size() != 4 && test_world().size() != 8) return;
  // (2, 2, world / 4): interleaved 1F1B with 2 model chunks per stage, then every layer an
  // activation checkpoint (its forward, all-reduces included, runs again in backward).
  check_against_one_process({.pipeline = 2, .tensor = 2, .zero_stage = 2, .chunks = 2});
  check_against_one_process({.pipeline = 2, .tensor = 2, .zero_stage = 1, .interval = 1});
}

TEST_CASE("partitioned_transfers_send_1_over_tp_and_give_the_same_losses_as_whole_ones") {
  // pipe_partitioned / grad_partitioned: each tensor rank sends its 1/tp slice and the
  // receivers all-gather (the byte checks of both runs hold the formulas); the all-gather
  // copies, so every loss is bitwise the one of whole transfers.
  const int ranks = test_world().size();
  if (ranks != 4 && ranks != 8) return;
  const Axes axes = ranks == 8 ? Axes{4, 2} : Axes{2, 2};
  std::vector<double> sliced, whole;
  check_against_one_process(
      {.pipeline = axes.pipeline, .tensor = axes.tensor, .zero_stage = 1, .partitioned = true},
      &sliced);
  check_against_one_process(
      {.pipeline = axes.pipeline, .tensor = axes.tensor, .zero_stage = 1, .partitioned = false},
      &whole);
  CHECK(sliced == whole);
}

TEST_CASE("clipping_by_the_norm_over_every_stage_and_shard_matches_one_process") {
  // The bound is below every step's norm (checked), so a norm of one stage alone, of one
  // tensor shard, or one that counted the tied head beside the embedding would change every
  // update; the engine's norm must be the whole model's.
  const int ranks = test_world().size();
  if (ranks == 4 || ranks == 8)
    check_against_one_process({.pipeline = 2, .tensor = 2, .zero_stage = 2, .clip = 0.05});
  if (ranks == 8)
    check_against_one_process({.pipeline = 4, .tensor = 1, .zero_stage = 1, .clip = 0.05});
  if (ranks == 2) check_against_one_process({.pipeline = 2, .zero_stage = 1, .clip = 0.05});
  // One stage holding both tied copies counts them once as well.
  if (ranks == 2)
    check_against_one_process({.pipeline = 1, .tensor = 2, .zero_stage = 1, .clip = 0.05});
}

TEST_CASE("llama_as_pipeline_layers_matches_one_process") {
  // Grouped-query attention, rotary tables made per stage, a tied head: (2, 1, world / 2) at
  // ZeRO 1, then (4, 1, world / 4) at ZeRO 2 with clipping (and interleaved on 8 ranks).
  const int ranks = test_world().size();
  if (ranks != 2 && ranks != 4 && ranks != 8) return;
  check_against_one_process({.pipeline = 2, .zero_stage = 1, .llama = true});
  if (ranks >= 4)
    check_against_one_process({.pipeline = 4, .zero_stage = 2, .clip = 0.05, .llama = true});
  if (ranks == 8)
    check_against_one_process({.pipeline = 2, .zero_stage = 1, .chunks = 2, .llama = true});
}

TEST_CASE("llama_of_tensor_parallel_layers_on_pipeline_tensor_data_grids_matches_one_process") {
  // (2, 2, 1) on 4 ranks at ZeRO 1 and 2, (2, 2, 2) on 8 at ZeRO 1: the split decoder layers
  // as pipeline stages, their tensor axis two all-reduces of b*s*h per layer each way as
  // GPT-2's blocks.
  const int ranks = test_world().size();
  if (ranks != 4 && ranks != 8) return;
  for (int zero_stage : ranks == 4 ? std::vector<int>{1, 2} : std::vector<int>{1})
    check_against_one_process(
        {.pipeline = 2, .tensor = 2, .zero_stage = zero_stage, .steps = kSteps3D, .llama = true});
}

TEST_CASE("sequence_parallel_stages_match_one_process_and_send_1_over_tp_of_each_activation") {
  // (2, 2, 1), GPT-2 and Llama: the tokens stay split between the stages.
  if (test_world().size() != 4) return;
  for (bool llama : {false, true})
    check_against_one_process({.pipeline = 2,
                               .tensor = 2,
                               .zero_stage = 1,
                               .steps = kSteps3D,
                               .llama = llama,
                               .sequence_parallel = true});
  // ZeRO 2 with an activation checkpoint per layer: the recomputed forward gathers again.
  check_against_one_process(
      {.pipeline = 2, .tensor = 2, .zero_stage = 2, .interval = 1, .sequence_parallel = true});
}

// The message building a (2, 2, world / 4) grid's pipeline engine throws on this rank.
std::string build_error_on_2x2_grid(const models::GPTConfig& model, int chunks, int autotp = 2) {
  comm::Communicator& world = test_world();
  const int replicas = world.size() / 4;
  comm::ProcessGrid grid(world, {.data = replicas, .pipeline = 2, .tensor = 2});
  try {
    dist::Config config = pipeline_config(1, replicas * 2 / autotp, chunks, 0, autotp);
    PipelineEngine engine(config, gpt_layer_specs(model, grid.tensor_group()),
                          gpt_vocab_parallel_loss(grid.tensor_group()), micro_batch(0, 0).inputs,
                          grid);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "(no error)";
}

TEST_CASE("what_a_3d_grid_cannot_be_built_from_is_one_line_on_every_rank") {
  comm::Communicator& world = test_world();
  if (world.size() != 4 && world.size() != 8) return;
  models::GPTConfig heads = tiny_gpt_config();
  heads.n_head = 1;
  CHECK(build_error_on_2x2_grid(heads, 1) ==
        "tensor parallelism: n_head 1 is not divisible by the tensor-parallel size 2");
  models::GPTConfig vocabulary = tiny_gpt_config();
  vocabulary.vocab_size = 31;
  CHECK(build_error_on_2x2_grid(vocabulary, 1) ==
        "tensor parallelism: vocab_size 31 is not divisible by the tensor-parallel size 2");
  // 1 block: 4 layers for 2 stages of 3 model chunks each.
  models::GPTConfig shallow = tiny_gpt_config();
  shallow.n_layer = 1;
  CHECK(build_error_on_2x2_grid(shallow, 3) ==
        "pipeline: 4 layers cannot fill 6 stages: each stage (and each model chunk of an "
        "interleaved stage) needs at least one layer");
  // The config's tensor size against the grid's.
  CHECK(build_error_on_2x2_grid(tiny_gpt_config(), 1, 1) ==
        fmt::format("pipeline_test: tensor_parallel.autotp_size: 1, but the grid has 2 tensor "
                    "ranks (world {0} = data {1} x pipeline 2 x tensor 2)",
                    world.size(), world.size() / 4));
  // A world the sizes do not divide: 8 ranks into tensor 3 x pipeline 2.
  try {
    comm::factor_world(world.size(), 3, 2);
    FAIL("no error");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what())
              .starts_with(fmt::format(
                  "process grid: a world of {} ranks cannot be split into tensor 3 x pipeline 2",
                  world.size())));
  }
  // The same grid builds once the sizes fit (and every rank is ready for the next test).
  CHECK(build_error_on_2x2_grid(tiny_gpt_config(), 1) == "(no error)");
}

}  // namespace
}  // namespace zt::pipeline
