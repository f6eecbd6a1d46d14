// Partitioned construction through the engine: a GPT (tied head) built inside PartitionedInit
// trains at stage 3 to weights bit for bit equal to the same GPT built whole, after 1, 2 and 4
// steps, in fp32 and bf16, on every rank count the suite runs; the engine adopts the slices
// without allocating the model whole; ranks whose generators differ and stages below 3 are
// refused with one line.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "dist/partitioned_init.h"
#include "models/gpt.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::dist {
namespace {

using testing::concatenated;
using testing::test_world;

constexpr int64_t kSequences = 8;  // per global step: divisible by 1, 2, 4 and 8 ranks
constexpr int64_t kLength = 6;

models::GPTConfig small_gpt() {
  models::GPTConfig config;
  config.vocab_size = 53;
  config.block_size = 8;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 16;
  return config;
}

Config stage_config(int stage, int world, bool bf16, int64_t threshold = 40,
                    bool offload_param = false) {
  std::string text = fmt::format(
      R"({{
    "train_batch_size": {}, "steps_per_print": 0, {}
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01, "weight_decay": 0.01}}}},
    "zero_optimization": {{"stage": {}, "stage3_param_persistence_threshold": {} {}}}
  }})",
      kSequences, bf16 ? R"("bf16": {"enabled": true},)" : "", stage, threshold,
      offload_param ? R"(, "offload_param": {"device": "cpu"})" : "");
  return parse_config(text, "partitioned_init_test", world, nullptr);
}

// This rank's rows of the global batch of `step` (the same on every rank).
std::pair<Tensor, Tensor> batch(int step, int rank, int world) {
  std::vector<int64_t> stream(size_t(kSequences * (kLength + 1)));
  for (size_t i = 0; i < stream.size(); ++i)
    stream[i] = int64_t((i * i * 5 + i * 3 + size_t(step)) % 53);
  Tensor all = from_int64(stream, {kSequences, kLength + 1});
  const int64_t rows = kSequences / world;
  Tensor mine = ops::narrow(all, 0, rank * rows, rows);
  return {ops::contiguous(ops::narrow(mine, 1, 0, kLength)),
          ops::contiguous(ops::narrow(mine, 1, 1, kLength))};
}

// The consolidated weights after steps 1, 2 and 4.
std::vector<std::vector<double>> train(bool partitioned, bool bf16, bool offload_param = false) {
  comm::MpiCommunicator& world = test_world();
  Config config = stage_config(3, world.size(), bf16, 40, offload_param);
  manual_seed(29);
  std::shared_ptr<models::GPT> model;
  if (partitioned) {
    PartitionedInit scope(world, config);
    model = std::make_shared<models::GPT>(small_gpt());
  } else {
    model = std::make_shared<models::GPT>(small_gpt());
  }
  Engine engine(config, model, world);
  std::vector<std::vector<double>> weights;
  for (int step = 1; step <= 4; ++step) {
    auto [tokens, targets] = batch(step, world.rank(), world.size());
    Tensor logits = engine.forward(tokens);
    Tensor loss = cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
    engine.backward(loss);
    engine.step();
    if (step != 3) weights.push_back(concatenated(engine.consolidated_state_dict()));
  }
  return weights;
}

TEST_CASE("a GPT built partitioned trains at stage 3 bit for bit as the GPT built whole") {
  for (bool bf16 : {false, true}) {
    CAPTURE(bf16);
    std::vector<std::vector<double>> whole = train(false, bf16);
    std::vector<std::vector<double>> cut = train(true, bf16);
    REQUIRE(cut.size() == 3);
    CHECK(whole[0] != whole[2]);  // training moved the weights
    for (size_t i = 0; i < cut.size(); ++i) {
      CAPTURE(i);
      CHECK(cut[i] == whole[i]);
    }
  }
}

TEST_CASE("the engine adopts the slices: nothing of the model's size is allocated") {
  comm::MpiCommunicator& world = test_world();
  Config config = stage_config(3, world.size(), false, 0);
  manual_seed(29);
  MemoryAccounting& accounting = cpu_allocator().accounting();
  const int64_t before = accounting.stats().live(MemoryTag::param);
  accounting.reset_peak();
  std::shared_ptr<models::GPT> model;
  {
    PartitionedInit scope(world, config);
    model = std::make_shared<models::GPT>(small_gpt());
  }
  const int64_t built_peak = accounting.stats().peak(MemoryTag::param) - before;
  const int64_t slices = accounting.stats().live(MemoryTag::param) - before;
  const int64_t whole_bytes = model->num_parameters() * int64_t(sizeof(float));
  Engine engine(config, model, world);
  // The engine's peak restarts at its end; the live bytes show what it added while adopting.
  const int64_t adopted = accounting.stats().live(MemoryTag::param) - before;
  MESSAGE("rank " << world.rank() << ": whole " << whole_bytes << " B, construction peak "
                  << built_peak << " B, slices " << slices << " B, after the engine " << adopted
                  << " B");
  if (world.size() >= 4) CHECK(built_peak < whole_bytes / 2);
  CHECK(adopted == slices);
}

TEST_CASE("with offload_param the slices are built in host memory and trained from there") {
  comm::MpiCommunicator& world = test_world();
  Config config = stage_config(3, world.size(), false, 0, true);
  manual_seed(29);
  MemoryAccounting& accounting = cpu_allocator().accounting();
  const MemoryStats before = accounting.stats();
  std::shared_ptr<models::GPT> model;
  {
    PartitionedInit scope(world, config);
    model = std::make_shared<models::GPT>(small_gpt());
  }
  const MemoryStats built = accounting.stats();
  const int64_t host_slices =
      built.live(MemoryTag::param_offload) - before.live(MemoryTag::param_offload);
  // Every slice is host memory; the device keeps no parameter bytes between construction and
  // the engine (a module's temporary full values are freed when it is cut).
  CHECK(host_slices > 0);
  CHECK(built.live(MemoryTag::param) == before.live(MemoryTag::param));
  Engine engine(config, model, world);
  // The engine adopts the host slices as they are: no second host copy.
  CHECK(accounting.stats().live(MemoryTag::param_offload) - before.live(MemoryTag::param_offload) ==
        host_slices);
  for (bool bf16 : {false, true}) {
    CAPTURE(bf16);
    CHECK(train(true, bf16, true) == train(false, bf16, true));
  }
}

TEST_CASE("partitioned construction refuses ranks whose generators differ") {
  comm::MpiCommunicator& world = test_world();
  if (world.size() < 2) return;
  Config config = stage_config(3, world.size(), false);
  manual_seed(world.rank() == 1 ? 8 : 7);
  CHECK_THROWS_WITH_AS(PartitionedInit(world, config),
                       doctest::Contains("rank 1: seed 8 offset 0): every rank draws"),
                       std::invalid_argument);
  manual_seed(0);  // every rank alike again
}

TEST_CASE("a model built partitioned is refused below stage 3 and with another threshold") {
  comm::MpiCommunicator& world = test_world();
  manual_seed(4);
  Config stage3 = stage_config(3, world.size(), false);
  std::shared_ptr<models::GPT> model;
  {
    PartitionedInit scope(world, stage3);
    model = std::make_shared<models::GPT>(small_gpt());
  }
  // A scope with another persistence threshold than the engine's cut the LayerNorms, which the
  // engine's plan keeps whole: the slices would hold the wrong values, so it is refused.
  Config other_threshold = stage_config(3, world.size(), false, 0);
  std::shared_ptr<models::GPT> cut_more;
  {
    PartitionedInit scope(world, other_threshold);
    cut_more = std::make_shared<models::GPT>(small_gpt());
  }
  CHECK_THROWS_WITH_AS(Engine(stage3, cut_more, world),
                       doctest::Contains("parameter h.0.ln_1.weight was cut inside "
                                         "PartitionedInit at offset 0 of a group of 32 elements"),
                       std::invalid_argument);
  Config stage2 = stage_config(2, world.size(), false);
  CHECK_THROWS_WITH_AS(Engine(stage2, model, world),
                       doctest::Contains("which only ZeRO stage 3 (zero_optimization.stage 3)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(PartitionedInit(world, stage2),
                       doctest::Contains("zero_optimization.stage is 2; partitioned"),
                       std::invalid_argument);
}

}  // namespace
}  // namespace zt::dist
