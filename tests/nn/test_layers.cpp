// Every layer: forward against a reference loop written here, and the gradients of its input
// and parameters by f64 finite differences.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "nn/nn.h"

using namespace zt;

namespace {

Tensor f64_values(const Shape& shape, uint64_t seed) {
  Generator generator(seed);
  return uniform(shape, -1.0, 1.0, {.dtype = DType::f64}, &generator);
}

void check_gradients(const autograd::GradcheckFn& fn, const std::vector<Tensor>& inputs) {
  for (const Tensor& input : inputs) input.set_requires_grad(true);
  autograd::GradcheckResult result = autograd::gradcheck(fn, inputs);
  INFO(result.message);
  CHECK(result.passed);
}

void check_close(const std::vector<double>& actual, const std::vector<double>& expected) {
  REQUIRE(actual.size() == expected.size());
  double worst = 0.0;
  for (size_t i = 0; i < actual.size(); ++i)
    worst = std::max(worst, std::abs(actual[i] - expected[i]));
  CHECK(worst < 1e-10);
}

}  // namespace

TEST_CASE("layer Linear: forward equals x W^T + b and gradients match finite differences") {
  nn::Linear layer(5, 3);
  layer.to(DType::f64);
  Tensor x = f64_values({4, 5}, 1);
  std::vector<double> xs = x.to_vector(), w = layer.weight.to_vector(), b = layer.bias.to_vector();
  std::vector<double> expected(12);
  for (int i = 0; i < 4; ++i)
    for (int o = 0; o < 3; ++o) {
      double sum = b[size_t(o)];
      for (int k = 0; k < 5; ++k) sum += xs[size_t(i * 5 + k)] * w[size_t(o * 5 + k)];
      expected[size_t(i * 3 + o)] = sum;
    }
  check_close(layer(x).to_vector(), expected);
  check_gradients([&](const std::vector<Tensor>& in) { return layer(in[0]); },
                  {x, layer.weight, layer.bias});
}

TEST_CASE("layer Conv2d: forward equals the direct convolution loop and gradients match") {
  nn::Conv2d layer(4, 6, 3, {.stride = 2, .padding = 1, .dilation = 1, .groups = 2});
  layer.to(DType::f64);
  Tensor x = f64_values({2, 4, 7, 6}, 2);
  Tensor out = layer(x);
  REQUIRE(out.sizes() == Shape{2, 6, 4, 3});
  std::vector<double> xs = x.to_vector(), w = layer.weight.to_vector(), b = layer.bias.to_vector();
  std::vector<double> expected(size_t(out.numel()));
  for (int n = 0; n < 2; ++n)
    for (int o = 0; o < 6; ++o)
      for (int oy = 0; oy < 4; ++oy)
        for (int ox = 0; ox < 3; ++ox) {
          double sum = b[size_t(o)];
          int group = o / 3;
          for (int c = 0; c < 2; ++c)
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx) {
                int iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx;
                if (iy < 0 || iy >= 7 || ix < 0 || ix >= 6) continue;
                int channel = group * 2 + c;
                sum += xs[size_t(((n * 4 + channel) * 7 + iy) * 6 + ix)] *
                       w[size_t(((o * 2 + c) * 3 + ky) * 3 + kx)];
              }
          expected[size_t(((n * 6 + o) * 4 + oy) * 3 + ox)] = sum;
        }
  check_close(out.to_vector(), expected);
  check_gradients([&](const std::vector<Tensor>& in) { return layer(in[0]); },
                  {x, layer.weight, layer.bias});
}

TEST_CASE("layer MaxPool2d and AvgPool2d: forward equals the window loop and gradients match") {
  Tensor x = f64_values({1, 2, 5, 5}, 3);
  nn::MaxPool2d max_pool(2);
  nn::AvgPool2d avg_pool(3, {.stride = 2, .padding = 1});
  std::vector<double> xs = x.to_vector();
  std::vector<double> expected_max, expected_avg;
  for (int c = 0; c < 2; ++c)
    for (int oy = 0; oy < 2; ++oy)
      for (int ox = 0; ox < 2; ++ox) {
        double best = -1e9;
        for (int ky = 0; ky < 2; ++ky)
          for (int kx = 0; kx < 2; ++kx)
            best = std::max(best, xs[size_t((c * 5 + oy * 2 + ky) * 5 + ox * 2 + kx)]);
        expected_max.push_back(best);
      }
  for (int c = 0; c < 2; ++c)
    for (int oy = 0; oy < 3; ++oy)
      for (int ox = 0; ox < 3; ++ox) {
        double sum = 0.0;
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx) {
            int iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx;
            if (iy >= 0 && iy < 5 && ix >= 0 && ix < 5) sum += xs[size_t((c * 5 + iy) * 5 + ix)];
          }
        expected_avg.push_back(sum / 9.0);  // count_include_pad, as PyTorch's default
      }
  check_close(max_pool(x).to_vector(), expected_max);
  check_close(avg_pool(x).to_vector(), expected_avg);
  check_gradients([&](const std::vector<Tensor>& in) { return max_pool(in[0]); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return avg_pool(in[0]); },
                  {f64_values({1, 2, 5, 5}, 4)});
}

TEST_CASE("layer LayerNorm: forward normalises each row and gradients match") {
  nn::LayerNorm layer({6});
  layer.to(DType::f64);
  {
    NoGradGuard no_grad;
    ops::copy_(layer.weight, f64_values({6}, 5));
    ops::copy_(layer.bias, f64_values({6}, 6));
  }
  Tensor x = f64_values({3, 6}, 7);
  std::vector<double> xs = x.to_vector(), w = layer.weight.to_vector(), b = layer.bias.to_vector();
  std::vector<double> expected;
  for (int r = 0; r < 3; ++r) {
    double mean = 0, var = 0;
    for (int c = 0; c < 6; ++c) mean += xs[size_t(r * 6 + c)] / 6;
    for (int c = 0; c < 6; ++c) var += std::pow(xs[size_t(r * 6 + c)] - mean, 2) / 6;
    for (int c = 0; c < 6; ++c)
      expected.push_back((xs[size_t(r * 6 + c)] - mean) / std::sqrt(var + 1e-5) * w[size_t(c)] +
                         b[size_t(c)]);
  }
  check_close(layer(x).to_vector(), expected);
  check_gradients([&](const std::vector<Tensor>& in) { return layer(in[0]); },
                  {x, layer.weight, layer.bias});
}

TEST_CASE(
    "layer Embedding: forward looks rows up, the weight gradient matches, padding gets none") {
  nn::Embedding layer(7, 4, 2);
  layer.to(DType::f64);
  Tensor indices = from_int64(std::vector<int64_t>{3, 0, 6, 3, 2}, {5});
  std::vector<double> w = layer.weight.to_vector(), expected;
  for (int64_t index : {3, 0, 6, 3, 2})
    for (int d = 0; d < 4; ++d) expected.push_back(w[size_t(index * 4 + d)]);
  check_close(layer(indices).to_vector(), expected);
  // The padding row is read in forward but gets no gradient (PyTorch's rule), so finite
  // differences are checked on indices that avoid it, and the padding row separately.
  Tensor unpadded = from_int64(std::vector<int64_t>{3, 0, 6, 3, 5}, {5});
  check_gradients([&](const std::vector<Tensor>&) { return layer(unpadded); }, {layer.weight});
  layer.zero_grad();
  sum(layer(indices)).backward();
  std::vector<double> grad = layer.weight.grad().to_vector();
  for (int d = 0; d < 4; ++d) {
    CHECK(grad[size_t(2 * 4 + d)] == 0.0);
    CHECK(grad[size_t(3 * 4 + d)] == 2.0);  // index 3 appears twice
  }
}

TEST_CASE("layer ReLU, GELU, Tanh, Sigmoid: forward equals the formula and gradients match") {
  Tensor x = f64_values({3, 5}, 8);
  std::vector<double> xs = x.to_vector();
  struct Case {
    std::shared_ptr<nn::Module> layer;
    double (*formula)(double);
  };
  std::vector<Case> cases{
      {std::make_shared<nn::ReLU>(), [](double v) { return v > 0 ? v : 0.0; }},
      {std::make_shared<nn::GELU>(),
       [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},
      {std::make_shared<nn::GELU>(true),
       [](double v) {
         return 0.5 * v * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
       }},
      {std::make_shared<nn::Tanh>(), [](double v) { return std::tanh(v); }},
      {std::make_shared<nn::Sigmoid>(), [](double v) { return 1 / (1 + std::exp(-v)); }}};
  for (Case& c : cases) {
    CAPTURE(c.layer->repr());
    std::vector<double> expected;
    for (double v : xs) expected.push_back(c.formula(v));
    check_close((*c.layer)(x).to_vector(), expected);
    check_gradients([&](const std::vector<Tensor>& in) { return (*c.layer)(in[0]); },
                    {f64_values({3, 5}, 9)});
  }
}

TEST_CASE("layer Dropout and Flatten: masks scale kept values by 1/(1-p); flatten keeps order") {
  nn::Dropout dropout(0.25);
  Tensor x = f64_values({4, 50}, 10);
  manual_seed(21);
  std::vector<double> out = dropout(x).to_vector(), xs = x.to_vector();
  int kept = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0.0) continue;
    ++kept;
    CHECK(out[i] == doctest::Approx(xs[i] / 0.75));
  }
  CHECK(kept > 120);
  CHECK(kept < 180);
  // The same generator state gives the same mask, so the gradient check sees one function.
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        manual_seed(22);
        return dropout(in[0]);
      },
      {f64_values({4, 6}, 11)});
  nn::Flatten flatten;
  Tensor image = f64_values({2, 3, 4, 5}, 12);
  Tensor flat = flatten(image);
  CHECK(flat.sizes() == Shape{2, 60});
  CHECK(flat.to_vector() == image.to_vector());
  check_gradients([&](const std::vector<Tensor>& in) { return flatten(in[0]); }, {image});
}
