// LAMB through the engine at ZeRO stages 0-2 on every world size of the suite, against the
// trajectory written from DeepSpeed's LAMB formula (tests/fixtures/make_lamb_fixture.py). With
// P_os a parameter's elements lie on several ranks (on 2 ranks fc1's weight spans both slices),
// and its trust ratio needs the norms of the whole parameter: the step must sum every rank's
// partial squares before it divides.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "autograd/functions.h"
#include "dist/initialize.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/optim/lamb_fixture.h"

namespace zt::testing {
namespace {

// The worst relative errors of the global losses and of the final weights at `stage`.
std::pair<double, double> lamb_replay(int stage) {
  comm::MpiRuntime& runtime = test_runtime();
  const int world = runtime.size(), rank = runtime.rank();
  const Tensor& inputs = lamb_fixture().at("inputs");
  const int64_t batch = inputs.size(1), micro = batch / world;
  nlohmann::json config = {{"train_batch_size", batch},
                           {"optimizer", nlohmann::json::parse(lamb_fixture().metadata.at("lamb"))},
                           {"zero_optimization", {{"stage", stage}}}};
  Initialized initialized =
      initialize(runtime, dist::parse_config(config.dump(), "lamb ds_config", world, nullptr),
                 lamb_fixture_model());
  dist::Engine& engine = *initialized.engine;
  const std::vector<double> losses = lamb_fixture().at("losses").to_vector();
  double worst_loss = 0.0;
  for (int64_t step = 0; step < inputs.size(0); ++step) {
    Tensor x = lamb_fixture_rows("inputs", step, rank * micro, micro);
    Tensor y = lamb_fixture_rows("targets", step, rank * micro, micro);
    engine.backward(mse_loss(engine(x), y));
    engine.step();
    const double reference = losses[size_t(step)];
    worst_loss = std::max(worst_loss, std::abs(engine.last_global_loss() - reference) / reference);
  }
  double worst_weight = 0.0;
  for (const auto& [name, tensor] : engine.consolidated_state_dict()) {
    worst_weight = std::max(
        worst_weight,
        lamb_relative_error(tensor.to_vector(), lamb_fixture().at("final." + name).to_vector()));
  }
  return {worst_loss, worst_weight};
}

TEST_CASE("LAMB at ZeRO stages 0-2: losses and weights within 1e-5 of DeepSpeed's formula") {
  for (int stage : {0, 1, 2}) {
    CAPTURE(stage);
    auto [loss_error, weight_error] = lamb_replay(stage);
    MESSAGE(
        fmt::format("LAMB stage {} on {} rank(s): worst relative error of the losses {:.2e}, "
                    "of the final weights {:.2e}",
                    stage, test_runtime().size(), loss_error, weight_error));
    CHECK(loss_error <= kLambTolerance);
    CHECK(weight_error <= kLambTolerance);
  }
}

}  // namespace
}  // namespace zt::testing
