// The engine with a model whose modules take several inputs (one of them optional) and return
// several outputs: Engine::forward passes them all, casts only the floating ones, and ZeRO
// stage 3 gathers every such module before its forward and again when backward reaches any of
// its outputs, so stages 1-3 give weights bitwise equal to stage 0.
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
#include "nn/nn.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::dist {
namespace {

using testing::global_batch;
using testing::GlobalBatch;
using testing::kGlobalBatch;
using testing::test_world;

// (x, shift or None) -> (tanh(fc(x)) + shift, 0.5 * that): both outputs feed the loss, so
// backward reaches the module through either one first.
class ShiftedBlock final : public nn::Module {
 public:
  ShiftedBlock(int64_t in, int64_t out) {
    fc = register_module("fc", std::make_shared<nn::Linear>(in, out));
  }
  std::string type_name() const override { return "ShiftedBlock"; }
  std::shared_ptr<nn::Linear> fc;

 protected:
  nn::TensorList forward_many(const nn::TensorList& inputs) override {
    Tensor hidden = tanh((*fc)(inputs.at(0)));
    if (inputs.at(1).defined()) hidden = hidden + inputs[1];
    return {hidden, hidden * 0.5};
  }
};

// (x, shift or None) -> (logits, hidden): a block of two inputs and outputs, then a head.
class TwoInputModel final : public nn::Module {
 public:
  TwoInputModel() {
    manual_seed(77);
    block = register_module("block", std::make_shared<ShiftedBlock>(64, 96));
    head = register_module("head", std::make_shared<nn::Linear>(96, 10));
  }
  std::string type_name() const override { return "TwoInputModel"; }
  std::shared_ptr<ShiftedBlock> block;
  std::shared_ptr<nn::Linear> head;

 protected:
  nn::TensorList forward_many(const nn::TensorList& inputs) override {
    nn::TensorList hidden = (*block)(inputs);
    return {(*head)(hidden[0] + hidden[1]), hidden[1]};
  }
};

Config multi_input_config(int stage, int world) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 4000,
                          "stage3_param_persistence_threshold": 0}}
  }})",
                                 kGlobalBatch, stage);
  return parse_config(text, "multi_input_config", world, nullptr);
}

std::vector<double> train_two_input_model(int stage) {
  comm::MpiCommunicator& world = test_world();
  comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
  Engine engine(multi_input_config(stage, world.size()), std::make_shared<TwoInputModel>(),
                grid.data_group());
  int64_t micro = kGlobalBatch / world.size();
  for (int step = 0; step < 8; ++step) {
    GlobalBatch batch = global_batch(step);
    int64_t first = world.rank() * micro;
    // Every other step leaves the optional shift out (None).
    Tensor shift = step % 2 == 0 ? full({micro, 96}, 0.125) : Tensor();
    nn::TensorList outputs = engine(ops::narrow(batch.inputs, 0, first, micro), shift);
    REQUIRE(outputs.size() == 2);
    Tensor loss = cross_entropy(outputs[0], ops::narrow(batch.targets, 0, first, micro)) +
                  mean(outputs[1] * outputs[1]) * 0.1;
    engine.backward(loss);
    engine.step();
  }
  return testing::concatenated(engine.consolidated_state_dict());
}

}  // namespace

TEST_CASE("a model of two-input two-output modules trains bitwise alike at ZeRO stages 0-3") {
  std::vector<double> reference = train_two_input_model(0);
  for (int stage = 1; stage <= 3; ++stage) {
    CAPTURE(stage);
    CHECK(train_two_input_model(stage) == reference);
  }
}

}  // namespace zt::dist
