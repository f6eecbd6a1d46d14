// Block-sparse attention's memory in training: a GPT with the fixed layout trains at ZeRO
// stage 3 under a per-rank device limit (MemoryAccounting::set_limit) that the dense model
// with eager attention, which keeps the [B, H, T, T] scores, does not fit: it stops with the
// out-of-memory error naming the limit. The fused dense kernel keeps O(T) too and fits.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/engine.h"
#include "models/gpt.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::dist {
namespace {

using testing::test_world;

constexpr int64_t kLength = 512, kLayers = 2, kHeads = 2;

Config stage3_config(int world) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.003}}}},
    "zero_optimization": {{"stage": 3, "stage3_param_persistence_threshold": 0}}
  }})",
                                 world);
  return parse_config(text, "sparse_long_context_test", world, nullptr);
}

enum class Attention { sparse_fixed, fused_dense, eager_dense };

models::GPTConfig gpt_config(Attention attention) {
  models::GPTConfig config;
  config.vocab_size = 256;
  config.block_size = kLength;
  config.n_layer = kLayers;
  config.n_head = kHeads;
  config.n_embd = 32;
  if (attention == Attention::sparse_fixed) {
    SparsityConfig fixed;  // DeepSpeed's defaults: windows of 4 blocks of 16, 1 global
    fixed.unidirectional = true;
    config.sparse_attention = fixed;
  }
  config.eager_attention = attention == Attention::eager_dense;
  return config;
}

struct Outcome {
  bool trained = false;
  std::string error;  // the OutOfMemoryError's message when it did not
  std::vector<double> losses;
  int64_t peak_bytes = 0;  // device bytes above the base, over the run
};

// Three optimizer steps of one window of kLength tokens per rank (the same window each step,
// so the loss must fall), with the device limited to `budget` bytes above what is live before
// the model is built (0: no limit).
Outcome train_under(Attention attention, int64_t budget) {
  MemoryAccounting& accounting = cpu_allocator().accounting();
  const int64_t base = accounting.stats().device_live_bytes;
  accounting.set_limit(budget > 0 ? base + budget : 0);
  accounting.reset_peak();
  Outcome outcome;
  try {
    manual_seed(7);
    auto model = std::make_shared<models::GPT>(gpt_config(attention));
    Engine engine(stage3_config(test_world().size()), model, test_world());
    std::vector<int64_t> stream(size_t(kLength + 1));
    for (size_t i = 0; i < stream.size(); ++i)
      stream[i] = int64_t((i * i * 7 + i * 3 + size_t(test_world().rank())) % 256);
    Tensor tokens = from_int64(stream, {1, kLength + 1});
    Tensor inputs = tokens.narrow(1, 0, kLength).contiguous();
    Tensor targets = tokens.narrow(1, 1, kLength).contiguous();
    for (int step = 0; step < 3; ++step) {
      Tensor logits = engine.forward(inputs);
      Tensor loss = cross_entropy(logits.reshape({kLength, 256}), targets.reshape({kLength}));
      outcome.losses.push_back(loss.item());
      engine.backward(loss);
      engine.step();
    }
    outcome.trained = true;
    outcome.peak_bytes = accounting.stats().device_peak_bytes - base;
  } catch (const OutOfMemoryError& error) {
    outcome.error = error.what();
  }
  accounting.set_limit(0);
  return outcome;
}

}  // namespace

TEST_CASE(
    "sparse attention: the fixed-layout GPT trains at stage 3 under a device limit that the "
    "dense GPT with eager attention does not fit") {
  // The limit: what eager attention keeps for the backward in its [1, H, T, T] f32 tensors
  // alone, the scores and the softmax weights of each layer (2 MiB each here, 8 MiB in all).
  // The sparse kernel keeps O(T) per layer (output, log-sum-exp, block index): its whole run,
  // parameters and the rest of the activations included, measured 4.3-4.9 MiB.
  const int64_t budget = 2 * kLayers * (kHeads * kLength * kLength * 4);

  Outcome sparse = train_under(Attention::sparse_fixed, budget);
  CHECK_MESSAGE(sparse.trained, sparse.error);
  if (sparse.trained) {
    CHECK(std::isfinite(sparse.losses.back()));
    CHECK(sparse.losses.back() < sparse.losses.front());
  }
  // ZeroTrain's fused dense kernel is flash-style: it keeps O(T) as well, and fits.
  Outcome fused = train_under(Attention::fused_dense, budget);
  CHECK_MESSAGE(fused.trained, fused.error);

  // Every rank runs the same shapes, so every rank stops at the same allocation.
  Outcome eager = train_under(Attention::eager_dense, budget);
  CHECK_FALSE(eager.trained);
  CHECK(eager.error.find("would pass the limit of") != std::string::npos);
  // Without the limit the eager model trains, to the fused kernel's losses.
  Outcome unlimited = train_under(Attention::eager_dense, 0);
  REQUIRE(unlimited.trained);
  REQUIRE(fused.trained);
  for (size_t step = 0; step < fused.losses.size(); ++step)
    CHECK(unlimited.losses[step] == doctest::Approx(fused.losses[step]).epsilon(1e-5));
}

}  // namespace zt::dist
