// Multi-rank tests of the engine's refusals of a wrong training loop, at every ZeRO stage and in
// fp32, fp16 and bf16: loss.backward() followed by engine.step() (whose gradients the engine
// never reduces, so stages 2 and 3 updated nothing), step() with no engine.backward, and a
// second engine.backward with no step() (a forgotten step). Each is a std::logic_error saying
// what to call instead, thrown on every rank alike, and the engine changes nothing.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

using namespace zt::comm;

namespace zt::dist {
namespace {

using namespace testing;

Config misuse_config(int stage, const std::string& precision, int64_t gas, int world) {
  std::string precision_keys;
  if (precision == "fp16")
    precision_keys = R"("fp16": {"enabled": true, "initial_scale_power": 8},)";
  if (precision == "bf16") precision_keys = R"("bf16": {"enabled": true},)";
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "gradient_accumulation_steps": {}, "steps_per_print": 0, {}
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "zero_optimization": {{"stage": {}, "stage3_param_persistence_threshold": 0}}
  }})",
                                 kGlobalBatch, gas, precision_keys, stage);
  return parse_config(text, "misuse_test", world, nullptr);
}

// One engine over the helpers' MLP, and this rank's micro-batch loss of global step 0.
struct MisuseFixture {
  MpiCommunicator& world = test_world();
  ProcessGrid grid = ProcessGrid::data_parallel(world);
  Engine engine;
  MisuseFixture(int stage, const std::string& precision, int64_t gas = 1)
      : engine(misuse_config(stage, precision, gas, world.size()), make_mlp(), grid.data_group()) {}
  Tensor loss() {
    GlobalBatch batch = global_batch(0);
    int64_t micro = kGlobalBatch / (world.size() * engine.config().gradient_accumulation_steps);
    int64_t first = world.rank() * micro;
    Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro)).to(DType::f32);
    return cross_entropy(logits, ops::narrow(batch.targets, 0, first, micro));
  }
  std::vector<double> weights() { return concatenated(engine.consolidated_state_dict()); }
};

const std::vector<std::string> kPrecisions = {"fp32", "fp16", "bf16"};

}  // namespace

TEST_CASE("loss.backward() then engine.step() is refused at every stage, naming the parameter") {
  for (const std::string& precision : kPrecisions) {
    for (int stage : {0, 1, 2, 3}) {
      CAPTURE(precision);
      CAPTURE(stage);
      MisuseFixture fixture(stage, precision);
      std::vector<double> before = fixture.weights();
      fixture.loss().backward();
      CHECK_THROWS_WITH_AS(fixture.engine.step(),
                           doctest::Contains("got a gradient from a backward the engine did not "
                                             "run, such as loss.backward()"),
                           std::logic_error);
      CHECK_THROWS_WITH_AS(fixture.engine.step(),
                           doctest::Contains("Call engine.backward(loss) instead of "
                                             "loss.backward()"),
                           std::logic_error);
      // The engine's own backward would mix those gradients in: refused too.
      CHECK_THROWS_WITH_AS(fixture.engine.backward(fixture.loss()),
                           doctest::Contains("Engine::backward: parameter "), std::logic_error);
      CHECK(fixture.engine.micro_steps() == 0);
      CHECK(fixture.engine.global_steps() == 0);
      CHECK(fixture.weights() == before);
    }
  }
}

TEST_CASE("engine.step() with no engine.backward since the last step is refused at every stage") {
  for (int stage : {0, 1, 2, 3}) {
    CAPTURE(stage);
    MisuseFixture fixture(stage, "fp32");
    CHECK_THROWS_WITH_AS(fixture.engine.step(),
                         doctest::Contains("Engine::step: no engine.backward(loss) since the last "
                                           "step() (micro-step 0)"),
                         std::logic_error);
    fixture.engine.backward(fixture.loss());
    fixture.engine.step();
    CHECK(fixture.engine.global_steps() == 1);
    CHECK_THROWS_WITH_AS(fixture.engine.step(),
                         doctest::Contains("no engine.backward(loss) since the last step() "
                                           "(micro-step 1)"),
                         std::logic_error);
    CHECK(fixture.engine.global_steps() == 1);
  }
}

TEST_CASE("a second engine.backward with no step() is refused, inside a window and at its end") {
  for (const std::string& precision : kPrecisions) {
    for (int stage : {0, 1, 2, 3}) {
      for (int64_t gas : {1, 3}) {
        CAPTURE(precision);
        CAPTURE(stage);
        CAPTURE(gas);
        MisuseFixture fixture(stage, precision, gas);
        std::vector<double> before = fixture.weights();
        fixture.engine.backward(fixture.loss());
        CHECK_THROWS_WITH_AS(fixture.engine.backward(fixture.loss()),
                             doctest::Contains("called again with no engine.step() after the "
                                               "previous engine.backward (micro-step 0"),
                             std::logic_error);
        CHECK_THROWS_AS(fixture.engine.save_checkpoint("/nonexistent"), std::logic_error);
        // The loop goes on once step() follows, and the window's boundary updates the weights.
        fixture.engine.step();
        for (int64_t m = 1; m < gas; ++m) {
          fixture.engine.backward(fixture.loss());
          fixture.engine.step();
        }
        CHECK(fixture.engine.global_steps() == 1);
        CHECK(fixture.weights() != before);
      }
    }
  }
}

}  // namespace zt::dist
