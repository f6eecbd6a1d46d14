// Checkpoints of the tensor-parallel GPT-2 engine in DeepSpeed's layout: one model file per
// tensor rank and one optimizer file per (data rank, tensor rank). Saved halfway and resumed at
// the same (tp, dp) at ZeRO 0-3: bitwise the weights and losses of the run that was not stopped.
// Saved at tp 2 and loaded at tp 1 and tp 4 (the data axis takes the rest of the world):
// bitwise the saved weights, and the continued losses equal to those of the run that kept its
// layout to 4 decimals. Bad input: another model shape, a missing shard file, an absent tag.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "dist/checkpoint_files.h"
#include "dist/config.h"
#include "dist/engine.h"
#include "models/gpt.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/sharded_state.h"
#include "tensor_parallel/vocab_parallel.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/shared_scratch.h"

namespace zt::tensor_parallel {
namespace {

namespace fs = std::filesystem;
using testing::SharedScratch;
using testing::test_world;

constexpr int64_t kSequences = 8, kLength = 8;

models::GPTConfig tiny_gpt2(int64_t width = 16) {
  models::GPTConfig config;
  config.vocab_size = 32;
  config.block_size = kLength;
  config.n_layer = 2;
  config.n_head = 4;
  config.n_embd = width;
  return config;
}

struct Batch {
  Tensor tokens, targets;
};
// Step `step`'s global batch (another one every step).
Batch global_batch(int step) {
  std::vector<int64_t> stream(size_t(kSequences * (kLength + 1)));
  for (size_t i = 0; i < stream.size(); ++i)
    stream[i] = int64_t((i * i * 7 + i * 3 + size_t(step) * 13) % 32);
  Tensor all = from_int64(stream, {kSequences, kLength + 1});
  return {ops::contiguous(ops::narrow(all, 1, 0, kLength)),
          ops::contiguous(ops::narrow(all, 1, 1, kLength))};
}

dist::Config engine_config(int stage, int tensor_parallel, int world) {
  return dist::parse_config(fmt::format(R"({{"train_batch_size": {}, "steps_per_print": 0,
        "tensor_parallel": {{"autotp_size": {}}},
        "optimizer": {{"type": "Adam", "params": {{"lr": 0.002, "weight_decay": 0.01}}}},
        "zero_optimization": {{"stage": {}, "reduce_bucket_size": 300,
                              "stage3_param_persistence_threshold": 0}}}})",
                                        kSequences, tensor_parallel, stage),
                            "checkpoint_tensor_parallel_test", world, nullptr);
}

// One engine on a (tp, dp = world / tp) grid, its model cut from a whole GPT drawn from `seed`.
struct Run {
  std::unique_ptr<comm::ProcessGrid> grid;
  std::shared_ptr<TensorParallelGPT> model;
  std::unique_ptr<dist::Engine> engine;

  Run(int tensor_parallel, int stage, uint64_t seed,
      const models::GPTConfig& config = tiny_gpt2()) {
    comm::Communicator& world = test_world();
    grid = std::make_unique<comm::ProcessGrid>(world,
                                               comm::factor_world(world.size(), tensor_parallel));
    model = std::make_shared<TensorParallelGPT>(config, grid->tensor_group());
    manual_seed(seed);
    auto full = std::make_shared<models::GPT>(config);
    load_full_state(*model, full->named_parameters(), grid->tensor_group().rank(),
                    grid->tensor_group().size());
    engine = std::make_unique<dist::Engine>(engine_config(stage, tensor_parallel, world.size()),
                                            model, grid->data_group(), dist::ParamGroupSpecs{},
                                            &grid->tensor_group());
  }

  // Steps [first, last): the mean loss of each.
  std::vector<double> train(int first, int last) {
    const int dp = grid->shape().data, data_rank = grid->coordinates().data;
    const int64_t rows = kSequences / dp;
    std::vector<double> losses;
    for (int step = first; step < last; ++step) {
      Batch batch = global_batch(step);
      Tensor tokens = ops::contiguous(ops::narrow(batch.tokens, 0, data_rank * rows, rows));
      Tensor targets = ops::contiguous(ops::narrow(batch.targets, 0, data_rank * rows, rows));
      Tensor logits = engine->forward(tokens);
      Tensor loss = vocab_parallel_cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                 targets.reshape({-1}), grid->tensor_group());
      engine->backward(loss);
      engine->step();
      losses.push_back(engine->last_global_loss());
    }
    return losses;
  }

  // Every weight whole, by the whole GPT's names (collective over the tensor group).
  std::map<std::string, Tensor> whole_weights() {
    std::map<std::string, Tensor> weights;
    for (const auto& [name, whole] :
         gather_full(*model, engine->consolidated_state_dict(), grid->tensor_group()))
      weights[name] = whole;
    return weights;
  }
};

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.sizes() != b.sizes() || a.dtype() != b.dtype()) return false;
  Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr<float>(), y.data_ptr<float>(), size_t(x.numel()) * 4) == 0;
}

void check_bitwise(const std::map<std::string, Tensor>& got,
                   const std::map<std::string, Tensor>& expected) {
  REQUIRE(got.size() == expected.size());
  for (const auto& [name, weight] : expected) {
    CAPTURE(name);
    REQUIRE(got.count(name) == 1);
    CHECK(bitwise_equal(got.at(name), weight));
  }
}

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& error) {
    return error.what();
  }
  return "no error";
}

TEST_CASE("tensor_parallel_checkpoint_resumes_bitwise_at_the_same_layout_at_zero_0_to_3") {
  comm::Communicator& world = test_world();
  if (world.size() != 4 && world.size() != 8) return;
  for (int stage : {0, 1, 2, 3}) {
    CAPTURE(stage);
    SharedScratch scratch(world, "tp-checkpoint");
    Run straight(2, stage, 7);
    std::vector<double> straight_losses = straight.train(0, 4);
    std::vector<double> resumed_losses;
    {
      Run first(2, stage, 7);
      resumed_losses = first.train(0, 2);
      const std::string tag_dir = first.engine->save_checkpoint(scratch.path(), "half");
      // DeepSpeed's names: a model file per tensor rank, an optimizer file per (dp, tp) rank.
      const int dp = first.grid->shape().data;
      for (int mp = 0; mp < 2; ++mp) {
        CHECK(fs::exists(dist::model_states_file(tag_dir, mp)));
        for (int data_rank = 0; data_rank < dp; ++data_rank)
          CHECK(fs::exists(dist::optim_states_file(tag_dir, data_rank, mp)));
      }
      CHECK(!fs::exists(dist::model_states_file(tag_dir, 2)));
    }
    Run second(2, stage, 99);  // other weights, which the checkpoint must replace
    second.engine->load_checkpoint(scratch.path());
    CHECK(second.engine->global_steps() == 2);
    // At the same layout a rank reads only its own tensor rank's files: the model file and
    // the optimizer file of each data rank.
    const std::string tag_dir = scratch.path() + "/half";
    const int own = second.grid->coordinates().tensor;
    std::vector<std::string> expected{dist::model_states_file(tag_dir, own)};
    for (int data_rank = 0; data_rank < second.grid->shape().data; ++data_rank)
      expected.push_back(dist::optim_states_file(tag_dir, data_rank, own));
    CHECK(second.engine->files_read_by_last_load() == expected);
    std::vector<double> rest = second.train(2, 4);
    resumed_losses.insert(resumed_losses.end(), rest.begin(), rest.end());
    CHECK(resumed_losses == straight_losses);
    check_bitwise(second.whole_weights(), straight.whole_weights());
  }
}

TEST_CASE("tensor_parallel_checkpoint_saved_at_tp_2_loads_at_tp_1_and_tp_4") {
  comm::Communicator& world = test_world();
  if (world.size() != 4 && world.size() != 8) return;
  SharedScratch scratch(world, "tp-relayout");
  std::map<std::string, Tensor> saved_weights;
  std::vector<double> continued;  // the run that keeps tp 2
  {
    Run saved(2, 1, 7);
    saved.train(0, 2);
    saved.engine->save_checkpoint(scratch.path());
    saved_weights = saved.whole_weights();
    continued = saved.train(2, 4);
  }
  for (int tensor_parallel : {1, 4}) {
    for (int stage : {1, 3}) {
      CAPTURE(tensor_parallel);
      CAPTURE(stage);
      Run loaded(tensor_parallel, stage, 99);
      loaded.engine->load_checkpoint(scratch.path());
      check_bitwise(loaded.whole_weights(), saved_weights);
      std::vector<double> losses = loaded.train(2, 4);
      for (size_t step = 0; step < losses.size(); ++step) {
        CAPTURE(step);
        CHECK(std::abs(losses[step] - continued[step]) < 5e-5);
      }
    }
  }
}

TEST_CASE("tensor_parallel_checkpoint_bad_input_is_one_line_naming_the_file") {
  comm::Communicator& world = test_world();
  if (world.size() != 4 && world.size() != 8) return;
  SharedScratch scratch(world, "tp-bad-checkpoint");
  Run saved(2, 1, 7);
  saved.train(0, 1);
  const std::string tag_dir = saved.engine->save_checkpoint(scratch.path(), "good");
  // Another model shape: a wider GPT.
  {
    Run wider(2, 1, 7, tiny_gpt2(32));
    CHECK(error_of([&] { wider.engine->load_checkpoint(scratch.path(), "good"); }) ==
          fmt::format("{}: parameter wte.weight is [32, 16] whole in the checkpoint; this model's "
                      "wte.weight at tensor rank {} of 2 is [16, 32] (a checkpoint of another "
                      "model shape?)",
                      dist::model_states_file(tag_dir, wider.grid->coordinates().tensor),
                      wider.grid->coordinates().tensor));
  }
  // A missing shard file: tensor rank 1's model file, then one optimizer file.
  auto damaged = [&](const std::string& name, const std::string& removed_file) {
    const fs::path copy = fs::path(scratch.path()) / name;
    if (world.rank() == 0) {
      fs::copy(tag_dir, copy, fs::copy_options::recursive);
      fs::remove(copy / fs::path(removed_file).filename());
    }
    world.barrier();
    return copy.string();
  };
  const std::string no_model = damaged("no_model", dist::model_states_file(tag_dir, 1));
  CHECK(error_of([&] { saved.engine->load_checkpoint(scratch.path(), "no_model"); }) ==
        dist::model_states_file(no_model, 1) +
            ": missing (the checkpoint was saved with 1 pipeline stages x tensor size 2)");
  const int dp = saved.grid->shape().data;
  const std::string no_optim = damaged("no_optim", dist::optim_states_file(tag_dir, dp - 1, 1));
  CHECK(error_of([&] { saved.engine->load_checkpoint(scratch.path(), "no_optim"); }) ==
        fmt::format("{}: missing (the checkpoint was saved by {} ranks)",
                    dist::optim_states_file(no_optim, dp - 1, 1), dp));
  CHECK(error_of([&] { saved.engine->load_checkpoint(scratch.path(), "absent"); }) ==
        (fs::path(scratch.path()) / "absent").string() + ": no such checkpoint directory");
}

}  // namespace
}  // namespace zt::tensor_parallel
