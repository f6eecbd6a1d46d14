// The LAMB trajectory fixture (tests/fixtures/lamb_trajectory.safetensors, written by
// tests/fixtures/make_lamb_fixture.py from DeepSpeed's LAMB formula in float64): its model, its
// batches and the relative error used to compare with it. Shared by the optimizer's test and
// the engine's multi-rank test.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/ops/view.h"
#include "core/safetensors.h"
#include "nn/nn.h"

namespace zt::testing {

inline constexpr double kLambTolerance = 1e-5;  // relative: losses, trust ratios, final weights
inline const std::vector<std::string> kLambParamNames = {"0.weight", "0.bias", "2.weight",
                                                         "2.bias"};

inline const SafetensorsContents& lamb_fixture() {
  static const SafetensorsContents contents =
      load_safetensors((std::filesystem::path(__FILE__).parent_path().parent_path() /
                        "fixtures/lamb_trajectory.safetensors")
                           .string());
  return contents;
}

// The fixture's MLP (Linear 6->5, Tanh, Linear 5->3) with its initial weights.
inline std::shared_ptr<nn::Module> lamb_fixture_model() {
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(6, 5), std::make_shared<nn::Tanh>(),
      std::make_shared<nn::Linear>(5, 3)});
  NamedTensors initial;
  for (const std::string& name : kLambParamNames)
    initial.emplace_back(name, lamb_fixture().at("init." + name));
  model->load_state_dict(initial);
  return model;
}

// Rows [first, first + count) of step `step`'s inputs or targets.
inline Tensor lamb_fixture_rows(const std::string& which, int64_t step, int64_t first,
                                int64_t count) {
  const Tensor& all = lamb_fixture().at(which);
  return ops::contiguous(ops::narrow(ops::select(all, 0, step), 0, first, count));
}

inline double lamb_relative_error(const std::vector<double>& ours,
                                  const std::vector<double>& reference) {
  REQUIRE(ours.size() == reference.size());
  double difference = 0.0, norm = 0.0;
  for (size_t i = 0; i < ours.size(); ++i) {
    difference += (ours[i] - reference[i]) * (ours[i] - reference[i]);
    norm += reference[i] * reference[i];
  }
  return std::sqrt(difference / norm);
}

}  // namespace zt::testing
