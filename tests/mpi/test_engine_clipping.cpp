// Gradient clipping in the engine follows torch.nn.utils.clip_grad_norm_ (and DeepSpeed's
// clip_grad_norm_): the coefficient gradient_clipping / (norm + 1e-6) scales every gradient
// whenever it is below 1, which includes a norm equal to the bound, and never otherwise.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/factory.h"
#include "dist/initialize.h"
#include "nn/nn.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::testing {
namespace {

// One SGD step (lr 1) of a bias-free Linear(2, 1) from zero weights, whose gradient on every
// rank is the input (0.75, 1), of norm 1.25 exactly; returns the weights after it.
std::vector<double> weights_after_one_step(int stage, double gradient_clipping) {
  const int world = test_runtime().size();
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0, "gradient_clipping": {:.17g},
    "optimizer": {{"type": "SGD", "params": {{"lr": 1.0}}}},
    "zero_optimization": {{"stage": {}, "stage3_param_persistence_threshold": 0}}
  }})",
                                 world, gradient_clipping, stage);
  auto model = std::make_shared<nn::Linear>(2, 1, /*bias=*/false);
  model->load_state_dict({{"weight", zeros({1, 2})}});
  Initialized initialized =
      initialize(test_runtime(), dist::parse_config(text, "clipping", world, nullptr), model);
  dist::Engine& engine = *initialized.engine;
  engine.backward(sum(engine(from_values({0.75, 1.0}, {1, 2}))));
  engine.step();
  CHECK(engine.get_global_grad_norm() == 1.25);
  return engine.consolidated_state_dict().front().second.to_vector();
}

TEST_CASE("the engine clips a gradient whose norm equals gradient_clipping, as torch does") {
  for (int stage : {0, 3}) {
    CAPTURE(stage);
    for (double bound : {1.25, 1.0, 2.0}) {
      CAPTURE(bound);
      const double coefficient = bound / (1.25 + 1e-6);
      // The gradients are scaled in f32 by the coefficient rounded to f32, then stepped.
      const float scale = coefficient < 1.0 ? float(coefficient) : 1.0f;
      const std::vector<double> expected = {-double(0.75f * scale), -double(1.0f * scale)};
      CHECK(weights_after_one_step(stage, bound) == expected);
    }
  }
}

}  // namespace
}  // namespace zt::testing
