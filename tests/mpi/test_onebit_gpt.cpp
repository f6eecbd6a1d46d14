// The compressed-communication optimizers on the GPT (GPT-2 layout, lm_head tied to wte) in
// fp32 and bf16: after the warm-up a step sends >= 16x fewer bytes than fp32 Adam's for the same
// model, every rank ends with the same weights (the averaged momentum moves them alike), and
// the loss falls (1-bit Adam's did not while one scale compressed the momenta of a whole run of
// parameters).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "models/gpt.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::testing {
namespace {

constexpr int64_t kSequences = 8;  // per global step: divisible by 1, 2, 4 and 8 ranks
constexpr int64_t kLength = 16;
constexpr int kSteps = 8;
constexpr int kFreezeStep = 3;

std::shared_ptr<models::GPT> small_gpt() {
  manual_seed(7);
  models::GPTConfig config;
  config.vocab_size = 64;
  config.block_size = kLength;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 32;
  return std::make_shared<models::GPT>(config);  // 34,880 parameters, the head tied
}

dist::Config gpt_onebit_config(const std::string& optimizer, const std::string& precision) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0, {}
    "optimizer": {},
    "zero_optimization": {{"stage": 0}}
  }})",
                                 kSequences, precision, optimizer);
  return dist::parse_config(text, "ds_config.json", test_world().size(), nullptr);
}

struct GptRun {
  std::vector<int64_t> bytes_per_step;
  std::vector<double> losses;
  std::vector<double> weights;
};

GptRun train_gpt(const std::string& optimizer, const std::string& precision, int steps = kSteps) {
  comm::MpiCommunicator& world = test_world();
  comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
  auto model = small_gpt();
  dist::Engine engine(gpt_onebit_config(optimizer, precision), model, grid.data_group());
  // A repeating stream, so that the loss can fall within a few steps.
  std::vector<int64_t> stream(size_t(kSequences * (kLength + 1)));
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = int64_t((i * 5 + i / 7) % 64);
  Tensor all = from_int64(stream, {kSequences, kLength + 1});
  const int64_t rows = kSequences / world.size();
  Tensor tokens =
      ops::contiguous(ops::narrow(ops::narrow(all, 1, 0, kLength), 0, world.rank() * rows, rows));
  Tensor targets =
      ops::contiguous(ops::narrow(ops::narrow(all, 1, 1, kLength), 0, world.rank() * rows, rows));
  GptRun run;
  for (int step = 0; step < steps; ++step) {
    const comm::CommStats before = engine.data_parallel_communicator().stats();
    Tensor logits = engine.forward(tokens).to(DType::f32);
    engine.backward(cross_entropy(logits.reshape({-1, 64}), targets.reshape({-1})));
    engine.step();
    run.bytes_per_step.push_back(
        comm::CommStats::difference(engine.data_parallel_communicator().stats(), before)
            .total_payload_bytes());
    run.losses.push_back(engine.last_global_loss());
  }
  run.weights = concatenated(engine.consolidated_state_dict());
  return run;
}

// The largest relative difference, over the ranks, between a rank's weights and rank 0's.
double disagreement_with_rank_0(const std::vector<double>& weights) {
  comm::MpiCommunicator& world = test_world();
  Tensor root = from_values(weights, {int64_t(weights.size())});
  world.broadcast(root, 0);
  Tensor worst = full({1}, relative_error(weights, root.to_vector()));
  world.all_reduce(worst, comm::ReduceOperation::max);
  return worst.item();
}

TEST_CASE(
    "the GPT with 1-bit Adam, 0/1 Adam and 1-bit LAMB in fp32 and bf16: after the warm-up a "
    "step sends >= 16x fewer bytes than fp32 Adam's, the ranks agree and the loss falls") {
  const int world = test_world().size();
  const GptRun adam = train_gpt(R"({"type": "Adam", "params": {"lr": 0.003}})", "");
  const std::vector<std::pair<std::string, std::string>> optimizers = {
      {"OneBitAdam", fmt::format(R"({{"type": "OneBitAdam", "params": {{"lr": 0.003, "eps": 1e-6,
                      "betas": [0.9, 0.9], "freeze_step": {}}}}})",
                                 kFreezeStep)},
      {"ZeroOneAdam", fmt::format(R"({{"type": "ZeroOneAdam", "params": {{"lr": 0.003, "eps": 1e-4,
                      "var_freeze_step": {}}}}})",
                                  kFreezeStep)},
      {"OneBitLamb", fmt::format(R"({{"type": "OneBitLamb", "params": {{"lr": 0.02, "eps": 1e-6,
                      "freeze_step": {}}}}})",
                                 kFreezeStep)}};
  for (const char* precision : {"", R"("bf16": {"enabled": true},)"}) {
    for (const auto& [name, optimizer] : optimizers) {
      CAPTURE(name);
      CAPTURE(precision);
      const GptRun run = train_gpt(optimizer, precision);
      MESSAGE(fmt::format("{} rank(s), {} {}: bytes a step {} (Adam {}), loss {:.4f} -> {:.4f}",
                          world, name, precision[0] ? "bf16" : "fp32", run.bytes_per_step.back(),
                          adam.bytes_per_step.back(), run.losses.front(), run.losses.back()));
      CHECK(run.losses.back() < run.losses.front());
      const double disagreement = disagreement_with_rank_0(run.weights);
      // 0/1 Adam undoes each rank's local moves before applying the averaged one: rounding,
      // which in bf16 can flip a weight by one unit in the last place.
      CHECK(disagreement <= 1e-5);
      if (world == 1) continue;  // nothing is sent
      for (size_t step = kFreezeStep + 1; step < run.bytes_per_step.size(); ++step) {
        CAPTURE(step);
        CHECK(adam.bytes_per_step[step] >= 16 * run.bytes_per_step[step]);
      }
    }
  }
}

TEST_CASE(
    "0/1 Adam on the GPT at DeepSpeed's eps 1e-8 compresses each parameter with its own scale: "
    "the loss falls through the compressed-gradient steps and the local steps") {
  // Variance updates at steps 2-5, 6, 8, 10, 12; the gradient averaged compressed at 7, 9, 11
  // and 13; local steps from 14, synchronised every 1, then 2, then 4 steps. With one scale
  // for a run of parameters, the small gradients (LayerNorm's) took their neighbours' scale.
  const std::string optimizer = R"({"type": "ZeroOneAdam", "params": {"lr": 0.003,
      "betas": [0.9, 0.9], "eps": 1e-8, "var_freeze_step": 12, "var_update_scaler": 4,
      "local_step_scaler": 2, "local_step_clipper": 4}})";
  for (const char* precision : {"", R"("bf16": {"enabled": true},)"}) {
    CAPTURE(precision);
    const GptRun run = train_gpt(optimizer, precision, 24);
    MESSAGE(fmt::format("{} rank(s), ZeroOneAdam {}: loss {:.4f} -> {:.4f} (step 13 {:.4f})",
                        test_world().size(), precision[0] ? "bf16" : "fp32", run.losses.front(),
                        run.losses.back(), run.losses[12]));
    CHECK(run.losses[12] < run.losses.front() - 0.1);
    CHECK(run.losses.back() < run.losses[12] - 0.1);
    CHECK(disagreement_with_rank_0(run.weights) <= 1e-5);
  }
}

}  // namespace
}  // namespace zt::testing
