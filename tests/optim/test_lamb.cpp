// optim::Lamb against the fixture written from DeepSpeed's LAMB formula
// (tests/fixtures/make_lamb_fixture.py): 12 steps of a small MLP, every loss, every trust ratio
// and the final weights within 1e-5 relative; and the checks on its inputs.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "autograd/functions.h"
#include "core/factory.h"
#include "core/ops/optimizer.h"
#include "optim/lamb.h"
#include "tests/error_of.h"
#include "tests/optim/lamb_fixture.h"

namespace zt::testing {
namespace {

optim::Lamb fixture_lamb(const std::vector<Tensor>& params) {
  const nlohmann::json hyper = nlohmann::json::parse(lamb_fixture().metadata.at("lamb"))["params"];
  return optim::Lamb(optim::single_group(params, hyper["lr"], hyper["weight_decay"]),
                     {.beta1 = hyper["betas"][0],
                      .beta2 = hyper["betas"][1],
                      .eps = hyper["eps"],
                      .max_coeff = hyper["max_coeff"],
                      .min_coeff = hyper["min_coeff"]});
}

TEST_CASE("Lamb follows DeepSpeed's LAMB formula: losses, trust ratios and weights within 1e-5") {
  std::shared_ptr<nn::Module> model = lamb_fixture_model();
  std::vector<Tensor> params;
  for (const auto& [name, param] : model->named_parameters()) params.push_back(param);
  optim::Lamb lamb = fixture_lamb(params);
  const Tensor& inputs = lamb_fixture().at("inputs");
  const std::vector<double> losses = lamb_fixture().at("losses").to_vector();
  const std::vector<double> ratios = lamb_fixture().at("ratios").to_vector();
  double worst_loss = 0.0, worst_ratio = 0.0;
  for (int64_t step = 0; step < inputs.size(0); ++step) {
    lamb.zero_grad();
    Tensor x = lamb_fixture_rows("inputs", step, 0, inputs.size(1));
    Tensor y = lamb_fixture_rows("targets", step, 0, inputs.size(1));
    Tensor loss = mse_loss((*model)(x), y);
    loss.backward();
    lamb.step();
    worst_loss = std::max(
        worst_loss, std::abs(loss.item() - losses[size_t(step)]) / std::abs(losses[size_t(step)]));
    for (size_t p = 0; p < 4; ++p) {
      const double reference = ratios[size_t(step) * 4 + p];
      worst_ratio =
          std::max(worst_ratio, std::abs(lamb.last_trust_ratios()[p] - reference) / reference);
    }
  }
  double worst_weight = 0.0;
  for (const auto& [name, param] : model->named_parameters()) {
    worst_weight = std::max(
        worst_weight,
        lamb_relative_error(param.to_vector(), lamb_fixture().at("final." + name).to_vector()));
  }
  MESSAGE("worst relative error of the losses ", worst_loss, ", trust ratios ", worst_ratio,
          ", final weights ", worst_weight);
  CHECK(worst_loss <= kLambTolerance);
  CHECK(worst_ratio <= kLambTolerance);
  CHECK(worst_weight <= kLambTolerance);
}

TEST_CASE("Lamb: a tensor cut into norm segments of one key steps as the whole tensor") {
  // Two copies of one parameter; the second names its halves as pieces of one parameter.
  Tensor whole = randn({40}), split = ops::clone(whole);
  Tensor grad = randn({40});
  whole.set_requires_grad(true);
  split.set_requires_grad(true);
  whole.set_grad(grad);
  split.set_grad(ops::clone(grad));
  optim::Lamb plain(optim::single_group({whole}, 0.01, 0.1));
  optim::Lamb cut(optim::single_group({split}, 0.01, 0.1));
  cut.set_norm_segments(0, 0, {{0, 17, 0}, {17, 23, 0}}, 1);
  for (int step = 0; step < 3; ++step) {
    plain.step();
    cut.step();
  }
  CHECK(whole.to_vector() == split.to_vector());
}

TEST_CASE("Lamb's inputs are checked, naming what was expected") {
  Tensor param = zeros({4});
  CHECK(error_of([&] { optim::Lamb(optim::single_group({param}, 0.1), {.max_coeff = 0.001}); }) ==
        "Lamb: invalid max_coeff (expected >= min_coeff) 0.001");
  optim::Lamb lamb(optim::single_group({param}, 0.1));
  CHECK(error_of([&] {
          lamb.set_norm_segments(0, 0, {{0, 3, 0}}, 1);
        }) == "Lamb: norm segments of tensor 0 of group 0 cover 3 of its 4 elements");
  AdamOperands operands{param, zeros({4}), zeros({4}), zeros({4})};
  std::vector<float> no_scales;
  CHECK(error_of([&] {
          ops::lamb_apply({&operands, 1}, {}, no_scales);
        }) == "lamb_apply: 0 scales for 1 tensors; expected one per tensor");
}

}  // namespace
}  // namespace zt::testing
