// nn::RMSNorm: PyTorch's names and defaults (a `weight` of ones, eps = the input dtype's
// epsilon when not given), its forward against a reference loop, f64 gradients of input and
// weight, and its argument errors.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"
#include "nn/nn.h"
#include "tests/error_of.h"

using namespace zt;

namespace {

Tensor f64_values(const Shape& shape, uint64_t seed) {
  Generator generator(seed);
  return uniform(shape, -1.0, 1.0, {.dtype = DType::f64}, &generator);
}

// x / sqrt(mean over the last `cols` of x^2 + eps) * w.
std::vector<double> rms_norm_loop(const std::vector<double>& x, const std::vector<double>& w,
                                  size_t cols, double eps) {
  std::vector<double> out;
  for (size_t row = 0; row < x.size() / cols; ++row) {
    double squares = 0;
    for (size_t c = 0; c < cols; ++c) squares += x[row * cols + c] * x[row * cols + c];
    double scale = 1.0 / std::sqrt(squares / double(cols) + eps);
    for (size_t c = 0; c < cols; ++c) out.push_back(x[row * cols + c] * scale * w[c]);
  }
  return out;
}

double worst_difference(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

}  // namespace

TEST_CASE("layer RMSNorm: weight of ones named `weight`, forward equals a loop, gradients match") {
  nn::RMSNorm layer({2, 3}, 1e-3);
  auto parameters = layer.named_parameters();
  REQUIRE(parameters.size() == 1);
  CHECK(parameters[0].first == "weight");
  CHECK(layer.weight.sizes() == Shape{2, 3});
  CHECK(layer.weight.to_vector() == std::vector<double>(6, 1.0));
  layer.to(DType::f64);
  {
    NoGradGuard no_grad;
    ops::copy_(layer.weight, f64_values({2, 3}, 501));
  }
  Tensor x = f64_values({4, 2, 3}, 502);
  CHECK(worst_difference(layer(x).to_vector(),
                         rms_norm_loop(x.to_vector(), layer.weight.to_vector(), 6, 1e-3)) < 1e-12);
  x.set_requires_grad(true);
  layer.weight.set_requires_grad(true);
  autograd::GradcheckResult result = autograd::gradcheck(
      [&](const std::vector<Tensor>& in) { return layer(in[0]); }, {x, layer.weight});
  INFO(result.message);
  CHECK(result.passed);
}

TEST_CASE("layer RMSNorm without eps uses the input dtype's epsilon; without affine no weight") {
  nn::RMSNorm layer({8}, std::nullopt, /*elementwise_affine=*/false);
  CHECK(layer.named_parameters().empty());
  CHECK(!layer.weight.defined());
  // mean(x^2) = 1e-8 sits below f32's epsilon, so the default eps shapes the result.
  Tensor x = mul(f64_values({3, 8}, 503), 1e-4).to(DType::f32);
  std::vector<double> expected =
      rms_norm_loop(x.to_vector(), std::vector<double>(8, 1.0), 8, 1.1920928955078125e-07);
  CHECK(worst_difference(layer(x).to_vector(), expected) < 1e-6);
  CHECK(layer.extra_repr() == "[8], eps=None, elementwise_affine=false");
}

TEST_CASE("layer RMSNorm rejects an empty shape and eps <= 0, naming them") {
  CHECK(error_of([] { nn::RMSNorm({}); }) ==
        "RMSNorm: normalized_shape must be non-empty with positive sizes, got []");
  CHECK(error_of([] { nn::RMSNorm({4}, 0.0); }) == "RMSNorm: eps must be > 0 when given, got 0");
  nn::RMSNorm layer({4});
  CHECK(error_of([&] {
          layer(zeros({2, 5}));
        }) ==
        "rms_norm: normalized_shape [4] must be non-empty and match the last dims of input [2, 5]");
}
