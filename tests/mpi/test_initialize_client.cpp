// zt::initialize with the program's own optimizer and schedule (deepspeed.initialize's optimizer
// and lr_scheduler): a config without an optimizer block trains with the program's exactly as
// the equivalent block would, and the program's wins over a block the config has.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/initialize.h"
#include "nn/nn.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::testing {
namespace {

dist::Config config_with(int stage, const std::string& blocks) {
  const int world = test_runtime().size();
  std::string text = fmt::format(R"({{
    "train_micro_batch_size_per_gpu": 1, "steps_per_print": 0,
    "zero_optimization": {{"stage": {}}}{}
  }})",
                                 stage, blocks);
  return dist::parse_config(text, "client_test", world, nullptr);
}

const char* kScheduleBlock = R"(,
    "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 4, "warmup_max_lr": 0.05}})";

// Three steps of a Linear(4, 3) from seed 9 on a fixed input; every weight after them.
std::vector<double> weights_after_steps(const dist::Config& config, const ClientOptimizer& client) {
  manual_seed(9);
  auto model = std::make_shared<nn::Linear>(4, 3);
  Initialized initialized = initialize(test_runtime(), config, model, client);
  dist::Engine& engine = *initialized.engine;
  Tensor input = from_values({0.5, -1.0, 2.0, 0.25}, {1, 4});
  for (int step = 0; step < 3; ++step) {
    Tensor output = engine(input);
    engine.backward(sum(mul(output, output)));
    engine.step();
  }
  std::vector<double> weights;
  for (const auto& [name, tensor] : engine.consolidated_state_dict()) {
    for (double value : tensor.to_vector()) weights.push_back(value);
  }
  return weights;
}

TEST_CASE("the program's optimizer and schedule train as the equivalent config blocks do") {
  for (int stage : {0, 2}) {
    CAPTURE(stage);
    const std::string blocks = std::string(R"(,
      "optimizer": {"type": "Adam",
                    "params": {"lr": 0.05, "weight_decay": 0.1, "adam_w_mode": false}})") +
                               kScheduleBlock;
    std::vector<double> from_blocks = weights_after_steps(config_with(stage, blocks), {});
    dist::SchedulerConfig schedule = config_with(stage, kScheduleBlock).scheduler;
    ClientOptimizer client{.optimizer = dist::client_optimizer("adam", 0.05, 0.1),
                           .lr_scheduler = schedule};
    CHECK(weights_after_steps(config_with(stage, ""), client) == from_blocks);
    // With an SGD block in the config the program's Adam still wins, as in DeepSpeed.
    CHECK(weights_after_steps(config_with(stage, R"(,
      "optimizer": {"type": "SGD", "params": {"lr": 0.5}})"),
                              client) == from_blocks);
    // Decoupled decay updates otherwise: the comparison can tell optimizers apart.
    ClientOptimizer adamw{.optimizer = dist::client_optimizer("adamw", 0.05, 0.1),
                          .lr_scheduler = schedule};
    CHECK(weights_after_steps(config_with(stage, ""), adamw) != from_blocks);
  }
}

TEST_CASE("neither an optimizer block nor the program's optimizer is an error naming the file") {
  CHECK_THROWS_WITH_AS(weights_after_steps(config_with(1, ""), {}),
                       "client_test: optimizer: the config has no optimizer block and the "
                       "program passes no optimizer (give one of them)",
                       std::invalid_argument);
}

}  // namespace
}  // namespace zt::testing
