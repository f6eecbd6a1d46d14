// The tiny GPT-2 (lm_head tied to wte) and Llama of tests/fixtures/make_gpt_fixture.py trained
// through the engine at ZeRO stages 0-3: every step's loss and the final weights equal those of
// one process that sums the ranks' gradients the same way, at stage 3 the tied weight is stored
// once and released after the step, and generation through the KV cache works inside the engine.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "models/gpt.h"
#include "nn/shared_tensors.h"
#include "optim/adam.h"
#include "tests/models/tiny_gpt_fixture.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/gpt_test_models.h"
#include "tests/mpi/mpi_test_world.h"

using namespace zt::comm;

namespace zt::dist {
namespace {

using models::Architecture;
using testing::concatenated;
using testing::fixed_token_batch;
using testing::test_world;

constexpr int kSteps = 4;
// The global batch is fixed_token_batch's, the same on every rank and every step (so that the
// loss must fall).
constexpr int64_t kSequences = testing::kTinyBatchSequences;
constexpr int64_t kLength = testing::kTinyLength;

Config gpt_config(int stage, int world, bool bf16 = false) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0, {}
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01, "weight_decay": 0.01}}}},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 500,
                          "stage3_param_persistence_threshold": 0}}
  }})",
                                 kSequences, bf16 ? R"("bf16": {"enabled": true},)" : "", stage);
  return parse_config(text, "gpt_zero_test", world, nullptr);
}

Tensor rank_rows(const Tensor& global, int rank, int world) {
  const int64_t rows = kSequences / world;
  return ops::narrow(global, 0, rank * rows, rows);
}

Tensor mean_loss(const Tensor& logits, const Tensor& targets) {
  return cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

struct Trained {
  std::vector<double> losses;  // this rank's loss of each step
  std::vector<double> weights;
  int64_t activation_peak_bytes = 0;  // over the steps, from the allocator's accounting
};

Trained train_with_engine(Architecture architecture, int stage, bool bf16 = false,
                          bool gradient_checkpointing = false) {
  MpiCommunicator& world = test_world();
  auto model = testing::tiny_gpt(architecture);
  model->set_gradient_checkpointing(gradient_checkpointing);
  const int64_t vocab = model->config().vocab_size;
  Engine engine(gpt_config(stage, world.size(), bf16), model, world);
  Trained trained;
  MemoryAccounting& accounting = cpu_allocator().accounting();
  accounting.reset_peak();
  const int64_t activations_before = accounting.stats().live(MemoryTag::activation);
  for (int step = 0; step < kSteps; ++step) {
    testing::TokenBatch batch = fixed_token_batch(vocab);
    Tensor logits = engine.forward(rank_rows(batch.tokens, world.rank(), world.size()));
    Tensor loss = mean_loss(logits, rank_rows(batch.targets, world.rank(), world.size()));
    trained.losses.push_back(loss.item());
    engine.backward(loss);
    engine.step();
  }
  trained.activation_peak_bytes =
      accounting.stats().peak(MemoryTag::activation) - activations_before;
  trained.weights = concatenated(engine.consolidated_state_dict());
  return trained;
}

// One process doing what the ranks do: each rank's gradient, summed in rank order and scaled
// by 1/N (the engine's reduction), then Adam over model.parameters(), the tied weight once.
Trained train_single_process(Architecture architecture, int world, int rank) {
  auto model = testing::tiny_gpt(architecture);
  const int64_t vocab = model->config().vocab_size;
  std::vector<Tensor> params = model->parameters();
  optim::Adam adam(optim::single_group(params, 0.01, 0.01));
  Trained trained;
  for (int step = 0; step < kSteps; ++step) {
    testing::TokenBatch batch = fixed_token_batch(vocab);
    std::vector<Tensor> summed(params.size());
    for (int r = 0; r < world; ++r) {
      adam.zero_grad();
      Tensor loss = mean_loss((*model)(rank_rows(batch.tokens, r, world)),
                              rank_rows(batch.targets, r, world));
      if (r == rank) trained.losses.push_back(loss.item());
      loss.backward();
      for (size_t i = 0; i < params.size(); ++i)
        summed[i] = r == 0 ? ops::clone(params[i].grad()) : ops::add(summed[i], params[i].grad());
    }
    for (size_t i = 0; i < params.size(); ++i)
      params[i].set_grad(ops::mul(summed[i], 1.0 / double(world)));
    adam.step();
  }
  trained.weights = concatenated(model->state_dict());
  return trained;
}

}  // namespace

TEST_CASE(
    "a tiny GPT-2 with lm_head tied to wte, and a Llama, train at stages 0-3 with every loss "
    "and weight bitwise equal to one process summing the ranks' gradients alike") {
  MpiCommunicator& world = test_world();
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama}) {
    CAPTURE(models::architecture_name(architecture));
    Trained single = train_single_process(architecture, world.size(), world.rank());
    REQUIRE(single.losses.size() == size_t(kSteps));
    CHECK(single.losses.back() < single.losses.front());  // it learns
    for (int stage : {0, 1, 2, 3}) {
      CAPTURE(stage);
      Trained trained = train_with_engine(architecture, stage);
      CHECK(trained.losses == single.losses);
      CHECK(trained.weights == single.weights);
    }
  }
}

TEST_CASE("in bf16 the tiny GPT-2 and Llama train at stages 1-3 bitwise equal to stage 0") {
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama}) {
    CAPTURE(models::architecture_name(architecture));
    Trained stage0 = train_with_engine(architecture, 0, /*bf16=*/true);
    CHECK(stage0.losses.back() < stage0.losses.front());
    for (int stage : {1, 2, 3}) {
      CAPTURE(stage);
      Trained trained = train_with_engine(architecture, stage, /*bf16=*/true);
      CHECK(trained.losses == stage0.losses);
      CHECK(trained.weights == stage0.weights);
    }
  }
}

TEST_CASE(
    "with gradient checkpointing the tiny GPT-2 and Llama train at stages 0-3 bitwise as "
    "without, holding fewer activation bytes") {
  // At stage 3 each layer's re-run in backward gathers its weights again.
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama}) {
    CAPTURE(models::architecture_name(architecture));
    for (int stage : {0, 3}) {
      CAPTURE(stage);
      Trained plain = train_with_engine(architecture, stage);
      Trained checkpointed =
          train_with_engine(architecture, stage, /*bf16=*/false, /*gradient_checkpointing=*/true);
      CHECK(checkpointed.losses == plain.losses);
      CHECK(checkpointed.weights == plain.weights);
      CHECK(checkpointed.activation_peak_bytes < plain.activation_peak_bytes);
    }
  }
}

TEST_CASE(
    "at stage 3 the GPT's tied wte/lm_head weight is partitioned once and released after "
    "the step") {
  MpiCommunicator& world = test_world();
  auto model = testing::tiny_gpt(Architecture::gpt2);
  Engine engine(gpt_config(3, world.size()), model, world);
  testing::TokenBatch batch = fixed_token_batch(model->config().vocab_size);
  Tensor logits = engine.forward(rank_rows(batch.tokens, world.rank(), world.size()));
  CHECK_FALSE(model->token_embedding()->weight.storage()->is_materialized());
  engine.backward(mean_loss(logits, rank_rows(batch.targets, world.rank(), world.size())));
  engine.step();
  CHECK_FALSE(model->lm_head()->weight.storage()->is_materialized());
  CHECK(engine.plan().total_numel() == model->num_parameters());
  CHECK(nn::same_tensor(model->lm_head()->weight, model->token_embedding()->weight));
}

TEST_CASE("at stage 3 every rank generating through the KV cache gets the full forward's logits") {
  // Stage 3's gathers are collective: generation inside a running engine is done by every rank.
  MpiCommunicator& world = test_world();
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama}) {
    CAPTURE(models::architecture_name(architecture));
    auto model = testing::tiny_gpt(architecture);
    Engine engine(gpt_config(3, world.size()), model, world);
    autograd::NoGradGuard no_grad;
    model->eval();
    Tensor tokens =
        fixed_token_batch(model->config().vocab_size).tokens.narrow(0, 0, 1).contiguous();
    Tensor full = engine.forward(tokens);
    models::KVCache cache;
    std::vector<Tensor> pieces{model->forward(tokens.narrow(1, 0, 5).contiguous(), &cache)};
    for (int64_t t = 5; t < kLength; ++t)
      pieces.push_back(model->forward(tokens.narrow(1, t, 1).contiguous(), &cache));
    std::vector<double> stepwise = cat(pieces, 1).to_vector(), whole = full.to_vector();
    CHECK(testing::relative_error(stepwise, whole) < 1e-5);
    CHECK_FALSE(model->token_embedding()->weight.storage()->is_materialized());
  }
}

}  // namespace zt::dist
