// GPT-2 split across a tensor group, trained through the engine with ZeRO stages 0-3 over the
// data group, against one process training the unsplit GPT on the whole global batch with
// Adam and the same clipping: every step's loss equal to 4 decimals and the final weights
// within 1e-5 relative (fp32). Grids: (tp, dp) = (2, 2) on 4 ranks; (2, 4) and (4, 2) on 8.
// The clipping bound is below the gradient norm at every step, so a norm that counted the
// replicated parameters once per tensor rank, or a shard only once, would change every update.
// With sequence parallelism (tokens split over the tensor group between the layers): (tp, dp) =
// (2, 1) on 2 ranks, (2, 2) and (4, 1) on 4, the same bounds.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"
#include "dist/config.h"
#include "dist/engine.h"
#include "dist/initialize.h"
#include "models/gpt.h"
#include "optim/adam.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/sharded_state.h"
#include "tensor_parallel/vocab_parallel.h"
#include "tests/mpi/gpt_test_models.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/tensor_parallel_training.h"

namespace zt::tensor_parallel {
namespace {

using testing::fixed_token_batch;
using testing::test_world;
using testing::tiny_gpt2_config;
using testing::tiny_llama_config;

constexpr int kSteps = 3;
// The global batch is fixed_token_batch's, the same every step and on every rank (so that the
// loss must fall).
constexpr int64_t kSequences = testing::kTinyBatchSequences;
constexpr double kClip = 0.05;
constexpr uint64_t kSeed = 42;
// Adam moves an element by about lr whatever its gradient, so an element whose gradient is
// near zero moves by rounding noise: lr 2e-3 keeps that noise under 1e-5 of the weights' norm
// in fp32 (at 1e-2 Llama's first q_proj drifts 2e-5 from the one-process run).
constexpr double kLr = 0.002;

struct Trained {
  std::vector<double> losses;
  std::map<std::string, Tensor> weights;  // whole
  double first_norm = 0.0;
};

Trained train_single_process(const models::GPTConfig& config) {
  manual_seed(kSeed);
  auto owner = std::make_shared<models::GPT>(config);
  models::GPT& model = *owner;
  std::vector<Tensor> params = model.parameters();
  optim::Adam adam(optim::single_group(params, kLr, 0.01));
  Trained trained;
  for (int step = 0; step < kSteps; ++step) {
    testing::TokenBatch batch = fixed_token_batch(model.config().vocab_size);
    adam.zero_grad();
    Tensor logits = model(batch.tokens);
    Tensor loss = cross_entropy(logits.reshape({-1, logits.size(-1)}), batch.targets.reshape({-1}));
    trained.losses.push_back(loss.item());
    loss.backward();
    double squares = 0.0;
    for (const Tensor& param : params) squares += sum(pow(param.grad().to(DType::f64), 2.0)).item();
    const double norm = std::sqrt(squares), coefficient = kClip / (norm + 1e-6);
    if (step == 0) trained.first_norm = norm;
    if (coefficient < 1.0)
      for (const Tensor& param : params) param.set_grad(ops::mul(param.grad(), coefficient));
    adam.step();
  }
  for (const auto& [name, param] : model.named_parameters()) trained.weights[name] = param;
  return trained;
}

dist::Config engine_config(int stage, int tensor_parallel, int world) {
  return dist::parse_config(
      fmt::format(R"({{"train_batch_size": {}, "steps_per_print": 0, "gradient_clipping": {},
        "tensor_parallel": {{"autotp_size": {}}},
        "optimizer": {{"type": "Adam", "params": {{"lr": {}, "weight_decay": 0.01}}}},
        "zero_optimization": {{"stage": {}, "reduce_bucket_size": 300,
                              "stage3_param_persistence_threshold": 0}}}})",
                  kSequences, kClip, tensor_parallel, kLr, stage),
      "tensor_parallel_engine_test", world, nullptr);
}

Trained train_tensor_parallel(const models::GPTConfig& config, int stage, int tensor_parallel,
                              bool sequence_parallel) {
  comm::Communicator& world = test_world();
  comm::ProcessGrid grid(world, comm::factor_world(world.size(), tensor_parallel));
  comm::Communicator& tensor_group = grid.tensor_group();
  auto model = testing::split_gpt_from_seed(config, tensor_group, kSeed, sequence_parallel);
  dist::Engine engine(engine_config(stage, tensor_parallel, world.size()), model, grid.data_group(),
                      {}, &tensor_group);
  Trained trained;
  for (int step = 0; step < kSteps; ++step) {
    testing::step_on_data_rank_rows(engine, config.vocab_size, grid.coordinates().data,
                                    grid.shape().data, tensor_group);
    trained.losses.push_back(engine.last_global_loss());
    if (step == 0) trained.first_norm = engine.get_global_grad_norm();
  }
  for (const auto& [name, whole] :
       gather_full(*model, engine.consolidated_state_dict(), tensor_group))
    trained.weights[name] = whole;
  return trained;
}

double relative_difference(const Tensor& a, const Tensor& b) {
  Tensor difference = a.to(DType::f64) - b.detach().to(DType::f64);
  return std::sqrt(sum(difference * difference).item()) /
         std::sqrt(sum(pow(b.detach().to(DType::f64), 2.0)).item());
}

// (tp, dp) = (2, 2) on 4 ranks; (2, 4) and (4, 2) on 8.
std::vector<int> plain_tensor_sizes() {
  return test_world().size() == 4 ? std::vector<int>{2} : std::vector<int>{2, 4};
}

void check_trains_like_one_process(const models::GPTConfig& config, const std::vector<int>& stages,
                                   const std::vector<int>& sizes, bool sequence_parallel = false) {
  const Trained single = train_single_process(config);
  REQUIRE(single.first_norm > 2 * kClip);  // the clipping acts
  CHECK(single.losses.back() < single.losses.front());
  for (int tensor_parallel : sizes) {
    for (int stage : stages) {
      CAPTURE(tensor_parallel);
      CAPTURE(stage);
      Trained trained = train_tensor_parallel(config, stage, tensor_parallel, sequence_parallel);
      CHECK(std::abs(trained.first_norm - single.first_norm) < 1e-5 * single.first_norm);
      REQUIRE(trained.losses.size() == single.losses.size());
      for (size_t step = 0; step < single.losses.size(); ++step) {
        CAPTURE(step);
        CHECK(std::abs(trained.losses[step] - single.losses[step]) < 5e-5);
      }
      for (const auto& [name, weight] : single.weights) {
        CAPTURE(name);
        REQUIRE(trained.weights.count(name) == 1);
        CHECK(relative_difference(trained.weights.at(name), weight) < 1e-5);
      }
    }
  }
}

TEST_CASE("gpt2_at_tp_2_and_4_with_zero_0_to_3_trains_like_one_process_within_1e-5") {
  if (test_world().size() != 4 && test_world().size() != 8) return;
  check_trains_like_one_process(tiny_gpt2_config(), {0, 1, 2, 3}, plain_tensor_sizes());
}

TEST_CASE("llama_at_tp_2_and_4_with_zero_1_and_3_trains_like_one_process_within_1e-5") {
  if (test_world().size() != 4 && test_world().size() != 8) return;
  check_trains_like_one_process(tiny_llama_config(), {1, 3}, plain_tensor_sizes());
}

// (tp, dp) = (2, 1) on 2 ranks; (2, 2) and (4, 1) on 4.
std::vector<int> sequence_parallel_sizes() {
  return test_world().size() == 2 ? std::vector<int>{2} : std::vector<int>{2, 4};
}

TEST_CASE("gpt2_with_sequence_parallelism_at_zero_0_and_3_trains_like_one_process_within_1e-5") {
  if (test_world().size() != 2 && test_world().size() != 4) return;
  check_trains_like_one_process(tiny_gpt2_config(), {0, 3}, sequence_parallel_sizes(), true);
}

TEST_CASE("llama_with_sequence_parallelism_at_zero_1_trains_like_one_process_within_1e-5") {
  if (test_world().size() != 2 && test_world().size() != 4) return;
  check_trains_like_one_process(tiny_llama_config(), {1}, sequence_parallel_sizes(), true);
}

TEST_CASE("an_engine_whose_tensor_group_differs_from_the_config_is_one_line") {
  comm::Communicator& world = test_world();
  if (world.size() != 4 && world.size() != 8) return;
  comm::ProcessGrid grid(world, comm::factor_world(world.size(), 2));
  auto model = std::make_shared<TensorParallelGPT>(tiny_gpt2_config(), grid.tensor_group());
  try {
    dist::Engine engine(dist::parse_config(R"({"train_batch_size": 8, "tensor_parallel":
                            {"autotp_size": 2}, "optimizer": {"type": "Adam"}})",
                                           "ds_config.json", world.size(), nullptr),
                        model, grid.data_group());
    FAIL("no error");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()) ==
          "Engine: ds_config.json asks for a tensor-parallel size of 2 "
          "(tensor_parallel.autotp_size), but the engine's tensor group has 1 ranks");
  }
}

TEST_CASE("initialize_cuts_the_grid_from_autotp_size_and_builds_the_model_on_its_tensor_group") {
  comm::Communicator& world = test_world();
  if (world.size() != 4 && world.size() != 8) return;
  auto config = [&] {
    return dist::parse_config(R"({"train_micro_batch_size_per_gpu": 2, "steps_per_print": 0,
        "tensor_parallel": {"autotp_size": 2}, "optimizer": {"type": "Adam"}})",
                              "ds_config.json", world.size(), nullptr);
  };
  int built_on_tensor_ranks = 0;
  Initialized initialized =
      initialize(testing::test_runtime(), config(), [&](comm::ProcessGrid& grid) {
        built_on_tensor_ranks = grid.tensor_group().size();
        return std::make_shared<TensorParallelGPT>(tiny_gpt2_config(), grid.tensor_group());
      });
  CHECK(built_on_tensor_ranks == 2);
  CHECK(initialized.grid->shape() == comm::GridShape{.data = world.size() / 2, .tensor = 2});
  CHECK(initialized.engine->world_size() == world.size() / 2);
  CHECK(initialized.engine->config().train_batch_size == 2 * world.size() / 2);
  try {
    initialize(testing::test_runtime(), config(),
               std::make_shared<models::GPT>(tiny_gpt2_config()));
    FAIL("no error");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()) ==
          "initialize: ds_config.json: tensor_parallel.autotp_size 2 needs the model built on "
          "the grid's tensor group; pass a model builder (initialize(runtime, config, "
          "build_model))");
  }
}

}  // namespace
}  // namespace zt::tensor_parallel
