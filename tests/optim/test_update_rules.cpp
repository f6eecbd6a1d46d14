// Update rules and plain optimizers against reference loops in double precision.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/factory.h"
#include "optim/adam.h"
#include "optim/clip_grad.h"
#include "optim/sgd.h"
#include "optim/update_rules.h"

using namespace zt;
using namespace zt::optim;

namespace {

std::vector<float> ramp(size_t count, float start, float step) {
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = start + step * float(i);
  return values;
}

// torch.optim.Adam / AdamW written plainly in double.
struct ReferenceAdam {
  std::vector<double> params, exp_avg, exp_avg_sq;
  int step = 0;
  void update(const std::vector<double>& grads, const AdamHyper& h) {
    step += 1;
    for (size_t i = 0; i < params.size(); ++i) {
      double grad = grads[i];
      if (h.decoupled_weight_decay)
        params[i] *= 1.0 - h.lr * h.weight_decay;
      else
        grad += h.weight_decay * params[i];
      exp_avg[i] = h.beta1 * exp_avg[i] + (1 - h.beta1) * grad;
      exp_avg_sq[i] = h.beta2 * exp_avg_sq[i] + (1 - h.beta2) * grad * grad;
      double c1 = 1 - std::pow(h.beta1, step), c2 = 1 - std::pow(h.beta2, step);
      params[i] -= h.lr / c1 * exp_avg[i] / (std::sqrt(exp_avg_sq[i]) / std::sqrt(c2) + h.eps);
    }
  }
};

}  // namespace

TEST_CASE("adam_update matches torch Adam and AdamW over 10 steps within f32 precision") {
  for (bool decoupled : {true, false}) {
    CAPTURE(decoupled);
    size_t count = 129;
    std::vector<float> params = ramp(count, -1.0f, 0.013f);
    std::vector<float> exp_avg(count, 0.0f), exp_avg_sq(count, 0.0f);
    ReferenceAdam reference{std::vector<double>(params.begin(), params.end()),
                            std::vector<double>(count, 0.0), std::vector<double>(count, 0.0)};
    AdamHyper hyper{.lr = 0.01, .weight_decay = 0.1, .decoupled_weight_decay = decoupled};
    for (int step = 1; step <= 10; ++step) {
      std::vector<float> grads = ramp(count, 0.5f - 0.1f * float(step), -0.007f);
      hyper.step = step;
      adam_update(params, grads, exp_avg, exp_avg_sq, hyper);
      reference.update(std::vector<double>(grads.begin(), grads.end()), hyper);
    }
    double worst = 0.0;
    for (size_t i = 0; i < count; ++i)
      worst = std::max(worst, std::abs(params[i] - reference.params[i]));
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("adam first step moves each weight by lr against the gradient's sign") {
  // With bias correction, m_hat = g and v_hat = g^2 after one step: the move is lr*g/(|g|+eps).
  std::vector<float> params{1.0f, 1.0f, 1.0f}, grads{0.5f, -2.0f, 1e-3f};
  std::vector<float> exp_avg(3, 0.0f), exp_avg_sq(3, 0.0f);
  adam_update(params, grads, exp_avg, exp_avg_sq, {.lr = 0.1, .eps = 0.0});
  CHECK(params[0] == doctest::Approx(0.9).epsilon(1e-6));
  CHECK(params[1] == doctest::Approx(1.1).epsilon(1e-6));
  CHECK(params[2] == doctest::Approx(0.9).epsilon(1e-4));
}

TEST_CASE(
    "sgd_update matches torch SGD with momentum, dampening, nesterov and decay over 10 steps") {
  for (SgdHyper hyper :
       {SgdHyper{0.1, 0.0, 0.0, 0.0, false}, SgdHyper{0.1, 0.9, 0.0, 0.01, false},
        SgdHyper{0.05, 0.9, 0.3, 0.0, false}, SgdHyper{0.05, 0.8, 0.0, 0.02, true}}) {
    size_t count = 17;
    std::vector<float> params = ramp(count, 0.3f, -0.05f);
    std::vector<float> buffer(count, 0.0f);
    std::vector<double> ref_params(params.begin(), params.end()), ref_buffer(count, 0.0);
    for (int step = 0; step < 10; ++step) {
      std::vector<float> grads = ramp(count, 0.2f * float(step) - 0.3f, 0.01f);
      sgd_update(params, grads, buffer, hyper, step == 0);
      for (size_t i = 0; i < count; ++i) {
        double grad = grads[i] + hyper.weight_decay * ref_params[i];
        if (hyper.momentum != 0) {
          ref_buffer[i] =
              step == 0 ? grad : hyper.momentum * ref_buffer[i] + (1 - hyper.dampening) * grad;
          grad = hyper.nesterov ? grad + hyper.momentum * ref_buffer[i] : ref_buffer[i];
        }
        ref_params[i] -= hyper.lr * grad;
      }
    }
    for (size_t i = 0; i < count; ++i)
      CHECK(params[i] == doctest::Approx(ref_params[i]).epsilon(1e-5));
  }
}

TEST_CASE("update rules give the same bits whatever the partition of a flat buffer") {
  size_t count = 1000;
  std::vector<float> whole = ramp(count, -2.0f, 0.004f), grads = ramp(count, 1.0f, -0.002f);
  std::vector<float> m(count, 0.1f), v(count, 0.2f);
  std::vector<float> pieces = whole, m_pieces = m, v_pieces = v;
  AdamHyper hyper{.lr = 0.003, .weight_decay = 0.01, .step = 3};
  adam_update(whole, grads, m, v, hyper);
  const size_t boundaries[] = {0, 333, 666, count};  // three uneven "ranks"
  for (size_t piece = 0; piece < 3; ++piece) {
    size_t begin = boundaries[piece], length = boundaries[piece + 1] - begin;
    adam_update(std::span(pieces).subspan(begin, length),
                std::span<const float>(grads).subspan(begin, length),
                std::span(m_pieces).subspan(begin, length),
                std::span(v_pieces).subspan(begin, length), hyper);
  }
  CHECK(pieces == whole);
  CHECK(m_pieces == m);
  CHECK(v_pieces == v);
}

TEST_CASE("update rules reject spans of unequal length") {
  std::vector<float> params(4), grads(3), m(4), v(4);
  CHECK_THROWS_AS(adam_update(params, grads, m, v, {}), std::invalid_argument);
  CHECK_THROWS_AS(sgd_update(params, grads, m, {}, true), std::invalid_argument);
}

TEST_CASE("Adam optimizer steps each parameter with its own state and skips those without grads") {
  Tensor weight = from_values({1.0, -1.0, 0.5}, {3});
  Tensor frozen = from_values({2.0}, {1});
  weight.set_requires_grad(true);
  frozen.set_requires_grad(true);
  Adam adam(single_group({weight, frozen}, 0.1), {.eps = 0.0});
  weight.set_grad(from_values({1.0, -1.0, 0.0}, {3}));
  adam.step();
  std::vector<double> values = weight.to_vector();
  CHECK(values[0] == doctest::Approx(0.9));
  CHECK(values[1] == doctest::Approx(-0.9));
  CHECK(frozen.to_vector()[0] == 2.0);
  CHECK(adam.state(0, 0).step == 1);
  CHECK(adam.state(0, 0).exp_avg.storage()->tag() == MemoryTag::optim_state);
  CHECK_FALSE(adam.state(0, 1).exp_avg.defined());
  adam.zero_grad();
  CHECK_FALSE(weight.grad().defined());
}

TEST_CASE("optimizers reject a negative learning rate and invalid betas with the value") {
  Tensor weight = zeros({2});
  CHECK_THROWS_WITH_AS(Sgd(single_group({weight}, -0.1)), doctest::Contains("lr -0.1"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(Adam(single_group({weight}, 0.1), {.beta1 = 1.0}),
                       doctest::Contains("beta1"), std::invalid_argument);
  CHECK_THROWS_AS(Sgd(single_group({weight}, 0.1), {.momentum = 0.0, .nesterov = true}),
                  std::invalid_argument);
}

TEST_CASE("clip_grad_norm_ scales gradients to the max norm and returns the norm before") {
  Tensor a = zeros({2}), b = zeros({1});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  a.set_grad(from_values({3.0, 0.0}, {2}));
  b.set_grad(from_values({4.0}, {1}));
  double norm = clip_grad_norm_({a, b}, 1.0);
  CHECK(norm == doctest::Approx(5.0));
  CHECK(global_grad_norm({a, b}) == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(a.grad().to_vector()[0] == doctest::Approx(0.6).epsilon(1e-5));
  // Under the limit: untouched.
  CHECK(clip_grad_norm_({a, b}, 10.0) == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(b.grad().to_vector()[0] == doctest::Approx(0.8).epsilon(1e-5));
}
