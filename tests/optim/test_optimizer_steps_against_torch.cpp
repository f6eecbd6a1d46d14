// ZeroTrain's update rules against torch.optim's from identical f32 inputs: single steps of
// AdamW, Adam with L2 decay and SGD (momentum, dampening, Nesterov, weight decay) from
// tests/fixtures/optimizer_steps.safetensors (written by
// tests/fixtures/make_optimizer_step_fixture.py). The rules use PyTorch's order of operations
// (core/optimizer_arithmetic.h), so the results are PyTorch's to the bit wherever PyTorch's own
// arithmetic is correctly rounded. What must never appear is a difference of ours that leans one
// way: a hyperparameter rounded the wrong way (1 - beta2 taken from beta2 rounded to f32 is
// 1.3e-5 low) moves every element the same way, and such a coherent bias adds up over a
// layer's inputs where random roundings cancel.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "optim/update_rules.h"

using namespace zt;

namespace {

SafetensorsContents load_fixture() {
  const auto path = std::filesystem::path(__FILE__).parent_path().parent_path() /
                    "fixtures/optimizer_steps.safetensors";
  return load_safetensors(path.string());
}

std::vector<float> floats(const SafetensorsContents& file, const std::string& name) {
  std::vector<double> values = file.at(name).to_vector();
  return std::vector<float>(values.begin(), values.end());
}

nlohmann::json case_metadata(const SafetensorsContents& file, const std::string& name) {
  return nlohmann::json::parse(file.metadata.at(name));
}

// How ours differs from torch's over some values: those that differ, split by the direction of
// the difference (`direction` > 0 counts ours - torch > 0 as "up"), and the largest difference
// in units in the last place of torch's value.
struct Differences {
  int64_t up = 0, down = 0;
  double worst_ulps = 0.0;

  void add(float ours, float torch, double direction) {
    if (ours == torch) return;
    ((double(ours) - double(torch)) * direction > 0 ? up : down) += 1;
    float ulp = std::nextafter(std::abs(torch), INFINITY) - std::abs(torch);
    worst_ulps = std::max(worst_ulps, std::abs(double(ours) - double(torch)) / double(ulp));
  }
  int64_t differing() const { return up + down; }
};

}  // namespace

// PyTorch's sqrt of a large CPU tensor is one ulp low in about 0.6% of the elements (never
// high): there its denominator is smaller and its step longer than correctly rounded arithmetic
// gives. Those elements are found from its own sqrt, which the fixture stores; every other
// element must be PyTorch's to the bit, so no difference of ours remains, in either direction.
TEST_CASE(
    "one Adam step from PyTorch's inputs is PyTorch's to the bit wherever PyTorch's sqrt "
    "is correctly rounded") {
  SafetensorsContents file = load_fixture();
  for (std::string name :
       {"adamw_step1", "adamw_step7", "adamw_step1000", "adam_l2_step5", "adamw_beta1_0.3_step3"}) {
    CAPTURE(name);
    const nlohmann::json meta = case_metadata(file, name);
    const std::string prefix = name + ".";
    std::vector<float> params = floats(file, prefix + "params");
    const std::vector<float> before = params;
    std::vector<float> exp_avg = floats(file, prefix + "exp_avg");
    std::vector<float> exp_avg_sq = floats(file, prefix + "exp_avg_sq");
    optim::AdamHyper hyper{.lr = meta["lr"],
                           .beta1 = meta["beta1"],
                           .beta2 = meta["beta2"],
                           .eps = meta["eps"],
                           .weight_decay = meta["weight_decay"],
                           .decoupled_weight_decay = meta["optimizer"] == "AdamW",
                           .step = meta["step"]};
    optim::adam_update(params, floats(file, prefix + "grad"), exp_avg, exp_avg_sq, hyper);

    // The moments take no sqrt: PyTorch's bits everywhere.
    CHECK(exp_avg == floats(file, prefix + "exp_avg_after"));
    const std::vector<float> torch_exp_avg_sq = floats(file, prefix + "exp_avg_sq_after");
    CHECK(exp_avg_sq == torch_exp_avg_sq);
    const std::vector<float> torch_params = floats(file, prefix + "params_after");
    const std::vector<float> torch_roots = floats(file, prefix + "exp_avg_sq_after_sqrt");
    // "Up": ours moved further than PyTorch's, in the direction of PyTorch's step.
    Differences where_torch_sqrt_exact, where_torch_sqrt_low;
    int64_t torch_sqrt_low = 0, torch_sqrt_high = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      const float root = std::sqrt(torch_exp_avg_sq[i]);  // correctly rounded
      torch_sqrt_low += torch_roots[i] < root;
      torch_sqrt_high += torch_roots[i] > root;
      const double direction = torch_params[i] >= before[i] ? 1.0 : -1.0;
      (torch_roots[i] == root ? where_torch_sqrt_exact : where_torch_sqrt_low)
          .add(params[i], torch_params[i], direction);
    }
    MESSAGE(name, ": PyTorch's sqrt is low in ", torch_sqrt_low, " of ", params.size(),
            " elements; parameters that differ there: ", where_torch_sqrt_low.differing(), " (",
            where_torch_sqrt_low.up, " further, ", where_torch_sqrt_low.down, " shorter, at most ",
            where_torch_sqrt_low.worst_ulps,
            " ulp); elsewhere: ", where_torch_sqrt_exact.differing(), " (",
            where_torch_sqrt_exact.up, " further, ", where_torch_sqrt_exact.down, " shorter)");
    CHECK(where_torch_sqrt_exact.differing() == 0);
    CHECK(torch_sqrt_high == 0);
    CHECK(double(torch_sqrt_low) <= 0.02 * double(params.size()));
    CHECK(where_torch_sqrt_low.worst_ulps <= 2.0);
  }
}

TEST_CASE("one SGD step from PyTorch's inputs is PyTorch's to the bit, for every option") {
  SafetensorsContents file = load_fixture();
  for (std::string name :
       {"sgd_plain", "sgd_momentum_first", "sgd_momentum", "sgd_dampening", "sgd_nesterov"}) {
    CAPTURE(name);
    const nlohmann::json meta = case_metadata(file, name);
    const std::string prefix = name + ".";
    std::vector<float> params = floats(file, prefix + "params");
    const bool first_step = meta["first_step"];
    const bool momentum = meta["momentum"].get<double>() != 0.0;
    std::vector<float> buffer =
        first_step ? std::vector<float>(params.size()) : floats(file, prefix + "momentum_buffer");
    optim::SgdHyper hyper{.lr = meta["lr"],
                          .momentum = meta["momentum"],
                          .dampening = meta["dampening"],
                          .weight_decay = meta["weight_decay"],
                          .nesterov = meta["nesterov"]};
    optim::sgd_update(params, floats(file, prefix + "grad"), buffer, hyper, first_step);
    CHECK(params == floats(file, prefix + "params_after"));
    if (momentum) CHECK(buffer == floats(file, prefix + "momentum_buffer_after"));
  }
}
