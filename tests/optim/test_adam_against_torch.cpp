// ZeroTrain's Adam step against torch.optim.AdamW's from identical f32 inputs
// (tests/fixtures/adam_step.safetensors, written by tests/fixtures/make_adam_step_fixture.py).
// The two compute in different f32 orders, so bits differ; what must not differ is the
// direction of the differences: a hyperparameter rounded the wrong way (1 - beta2 taken from
// beta2 rounded to f32 is 1.3e-5 low) moves every element the same way, and such a coherent
// bias adds up over a layer's inputs where random roundings cancel.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "optim/update_rules.h"

using namespace zt;

namespace {

std::vector<float> floats(const SafetensorsContents& file, const std::string& name) {
  std::vector<double> values = file.at(name).to_vector();
  return std::vector<float>(values.begin(), values.end());
}

// How one-sided the nonzero entries of `signed_differences` are: |positives - negatives| over
// their count (0: balanced, 1: all one way); 0 when all are zero.
double sign_imbalance(const std::vector<double>& signed_differences) {
  double positives = 0, negatives = 0;
  for (double difference : signed_differences) {
    if (difference > 0) positives += 1;
    if (difference < 0) negatives += 1;
  }
  return positives + negatives == 0 ? 0.0
                                    : std::abs(positives - negatives) / (positives + negatives);
}

}  // namespace

TEST_CASE("one Adam step from PyTorch's inputs has no systematic difference from PyTorch's") {
  const auto fixture = std::filesystem::path(__FILE__).parent_path().parent_path() /
                       "fixtures/adam_step.safetensors";
  SafetensorsContents file = load_safetensors(fixture.string());
  for (int64_t step : {1, 7, 1000}) {
    CAPTURE(step);
    const std::string prefix = "step" + std::to_string(step) + ".";
    std::vector<float> params = floats(file, prefix + "params");
    const std::vector<float> before = params;
    std::vector<float> grad = floats(file, prefix + "grad");
    std::vector<float> exp_avg = floats(file, prefix + "exp_avg");
    std::vector<float> exp_avg_sq = floats(file, prefix + "exp_avg_sq");
    optim::AdamHyper hyper{.lr = 1e-3,
                           .beta1 = 0.9,
                           .beta2 = 0.999,
                           .eps = 1e-8,
                           .weight_decay = 0.01,
                           .decoupled_weight_decay = true,
                           .step = step};
    optim::adam_update(params, grad, exp_avg, exp_avg_sq, hyper);

    std::vector<float> torch_params = floats(file, prefix + "params_after");
    std::vector<float> torch_exp_avg_sq = floats(file, prefix + "exp_avg_sq_after");
    std::vector<double> further, second_moment;  // > 0: ours moved further / holds more
    double further_sum = 0.0, step_sum = 0.0, worst_difference = 0.0, largest_step = 0.0;
    for (size_t i = 0; i < params.size(); ++i) {
      double torch_step = double(torch_params[i]) - double(before[i]);
      double ours_step = double(params[i]) - double(before[i]);
      further.push_back((ours_step - torch_step) * (torch_step > 0 ? 1.0 : -1.0));
      second_moment.push_back(double(exp_avg_sq[i]) - double(torch_exp_avg_sq[i]));
      further_sum += further.back();
      step_sum += std::abs(torch_step);
      worst_difference = std::max(worst_difference, std::abs(ours_step - torch_step));
      largest_step = std::max(largest_step, std::abs(torch_step));
    }
    // The coherent part of the step differences, as a fraction of the steps (1 - beta2 rounded
    // through f32 made it 6e-6); the rest is each order's own rounding.
    double step_bias = std::abs(further_sum) / step_sum;
    MESSAGE("step ", step, ": worst difference / largest step ", worst_difference / largest_step,
            ", coherent step bias ", step_bias, ", sign imbalance of the second moments ",
            sign_imbalance(second_moment));
    CHECK(worst_difference / largest_step < 1e-5);
    CHECK(step_bias < 1e-6);
    CHECK(sign_imbalance(second_moment) < 0.25);
  }
}
