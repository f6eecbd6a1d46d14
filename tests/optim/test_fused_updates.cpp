// The fused multi-tensor updates and sum_of_squares of the CPU backend, through the checked
// ops entry points: bitwise equal to the span rules tensor by tensor and to one plainly written
// element (tests/optim/reference_updates.h), sums of squares equal to a plain double loop, and
// the argument errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "core/factory.h"
#include "core/ops/optimizer.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "optim/update_rules.h"
#include "tests/optim/reference_updates.h"

using namespace zt;
using namespace zt::optim;
using zt::testing::reference_adam_element;
using zt::testing::reference_sgd_element;

namespace {

// Sizes around the SIMD widths (4, 16) and the parallel chunk (32768 elements).
const int64_t kOddSizes[] = {1, 3, 4, 15, 17, 33, 1000, 32768 + 7};

Tensor random_f32(int64_t numel, uint32_t seed, double low = -1.0, double high = 1.0) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> distribution(low, high);
  std::vector<double> values(static_cast<size_t>(numel));
  for (double& value : values) value = distribution(engine);
  return from_values(values, {numel});
}

std::span<float> span_of(const Tensor& tensor) {
  return {tensor.data_ptr<float>(), size_t(tensor.numel())};
}

struct AdamTensors {
  std::vector<Tensor> params, grads, exp_avg, exp_avg_sq;
};

AdamTensors make_adam_tensors(uint32_t seed) {
  AdamTensors t;
  for (int64_t numel : kOddSizes) {
    t.params.push_back(random_f32(numel, seed++));
    t.grads.push_back(random_f32(numel, seed++, -0.1, 0.1));
    t.exp_avg.push_back(random_f32(numel, seed++, -0.01, 0.01));
    t.exp_avg_sq.push_back(random_f32(numel, seed++, 0.0, 1e-4));
  }
  return t;
}

AdamTensors clone_all(const AdamTensors& t) {
  AdamTensors copy;
  for (size_t i = 0; i < t.params.size(); ++i) {
    copy.params.push_back(ops::clone(t.params[i]));
    copy.grads.push_back(ops::clone(t.grads[i]));
    copy.exp_avg.push_back(ops::clone(t.exp_avg[i]));
    copy.exp_avg_sq.push_back(ops::clone(t.exp_avg_sq[i]));
  }
  return copy;
}

std::vector<AdamOperands> adam_operands(const AdamTensors& t) {
  std::vector<AdamOperands> operands;
  for (size_t i = 0; i < t.params.size(); ++i)
    operands.push_back({t.params[i], t.grads[i], t.exp_avg[i], t.exp_avg_sq[i]});
  return operands;
}

void check_bitwise_equal(const std::vector<Tensor>& actual, const std::vector<Tensor>& expected,
                         const char* what) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    CHECK_MESSAGE(actual[i].to_vector() == expected[i].to_vector(), what << " tensor " << i);
  }
}

}  // namespace

TEST_CASE("multi_tensor_adam_equals_the_span_rule_and_the_scalar_element_bitwise") {
  // beta1 0.3: 1 - beta1 >= 0.5 takes lerp's second form.
  for (auto [decoupled, bias_correction, beta1] :
       {std::tuple{true, true, 0.9}, std::tuple{true, false, 0.9}, std::tuple{false, true, 0.9},
        std::tuple{false, false, 0.9}, std::tuple{true, true, 0.3}}) {
    CAPTURE(decoupled);
    CAPTURE(bias_correction);
    CAPTURE(beta1);
    AdamHyper hyper{.lr = 3e-3,
                    .beta1 = beta1,
                    .weight_decay = 0.05,
                    .decoupled_weight_decay = decoupled,
                    .bias_correction = bias_correction,
                    .step = 7};
    AdamTensors fused = make_adam_tensors(10), per_tensor = clone_all(fused),
                scalar = clone_all(fused);
    ops::adam_update(adam_operands(fused), adam_step_constants(hyper));
    AdamStepConstants k = adam_step_constants(hyper);
    for (size_t i = 0; i < per_tensor.params.size(); ++i) {
      adam_update(span_of(per_tensor.params[i]), span_of(per_tensor.grads[i]),
                  span_of(per_tensor.exp_avg[i]), span_of(per_tensor.exp_avg_sq[i]), hyper);
      float *p = scalar.params[i].data_ptr<float>(), *g = scalar.grads[i].data_ptr<float>();
      float *m = scalar.exp_avg[i].data_ptr<float>(), *v = scalar.exp_avg_sq[i].data_ptr<float>();
      for (int64_t e = 0; e < scalar.params[i].numel(); ++e)
        reference_adam_element(p[e], g[e], m[e], v[e], k);
    }
    for (const AdamTensors* expected : {&per_tensor, &scalar}) {
      check_bitwise_equal(fused.params, expected->params, "param");
      check_bitwise_equal(fused.exp_avg, expected->exp_avg, "exp_avg");
      check_bitwise_equal(fused.exp_avg_sq, expected->exp_avg_sq, "exp_avg_sq");
    }
  }
}

TEST_CASE("multi_tensor_sgd_equals_the_span_rule_bitwise_for_every_option") {
  const SgdHyper hypers[] = {{0.1, 0.0, 0.0, 0.0, false},
                             {0.1, 0.9, 0.0, 0.01, false},
                             {0.05, 0.9, 0.3, 0.0, false},
                             {0.05, 0.8, 0.0, 0.02, true}};
  for (const SgdHyper& hyper : hypers) {
    for (bool first_step : {true, false}) {
      CAPTURE(hyper.momentum);
      CAPTURE(hyper.nesterov);
      CAPTURE(first_step);
      std::vector<Tensor> params, grads, buffers, span_params, span_buffers, scalar_params,
          scalar_buffers;
      std::vector<SgdOperands> operands;
      uint32_t seed = 50;
      for (int64_t numel : kOddSizes) {
        params.push_back(random_f32(numel, seed++));
        grads.push_back(random_f32(numel, seed++, -0.1, 0.1));
        buffers.push_back(random_f32(numel, seed++, -0.01, 0.01));
        span_params.push_back(ops::clone(params.back()));
        span_buffers.push_back(ops::clone(buffers.back()));
        scalar_params.push_back(ops::clone(params.back()));
        scalar_buffers.push_back(ops::clone(buffers.back()));
        operands.push_back(
            {params.back(), grads.back(), hyper.momentum != 0.0 ? buffers.back() : Tensor()});
      }
      ops::sgd_update(operands, sgd_step_constants(hyper, first_step));
      for (size_t i = 0; i < params.size(); ++i) {
        sgd_update(span_of(span_params[i]), span_of(grads[i]), span_of(span_buffers[i]), hyper,
                   first_step);
      }
      SgdStepConstants k = sgd_step_constants(hyper, first_step);
      for (size_t i = 0; i < params.size(); ++i) {
        float *p = scalar_params[i].data_ptr<float>(), *b = scalar_buffers[i].data_ptr<float>();
        const float* g = grads[i].data_ptr<float>();
        for (int64_t e = 0; e < params[i].numel(); ++e) reference_sgd_element(p[e], g[e], b[e], k);
      }
      check_bitwise_equal(params, span_params, "param");
      check_bitwise_equal(buffers, span_buffers, "momentum_buffer");
      check_bitwise_equal(params, scalar_params, "param (scalar reference)");
      if (hyper.momentum != 0.0) check_bitwise_equal(buffers, scalar_buffers, "momentum_buffer");
    }
  }
}

TEST_CASE("adam_optimizer_groups_parameters_by_step_and_matches_per_parameter_spans") {
  // Two parameters at different update counts (one restored from a checkpoint at step 4).
  Tensor a = random_f32(37, 1), b = random_f32(5, 2);
  Tensor a_copy = ops::clone(a), b_copy = ops::clone(b);
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  Adam adam(single_group({a, b}, 0.01, 0.1));
  ParamState restored;
  restored.step = 4;
  restored.tensors = {{"exp_avg", random_f32(5, 3, -0.01, 0.01)},
                      {"exp_avg_sq", random_f32(5, 4, 0.0, 1e-4)}};
  adam.set_param_state(0, 1, restored);
  Tensor b_m = ops::clone(restored.tensors[0].second), b_v = ops::clone(restored.tensors[1].second);
  Tensor a_m = zeros({37}), a_v = zeros({37});
  a.set_grad(random_f32(37, 5));
  b.set_grad(random_f32(5, 6));
  adam.step();
  AdamHyper hyper{.lr = 0.01, .weight_decay = 0.1, .step = 1};
  adam_update(span_of(a_copy), span_of(a.grad()), span_of(a_m), span_of(a_v), hyper);
  hyper.step = 5;
  adam_update(span_of(b_copy), span_of(b.grad()), span_of(b_m), span_of(b_v), hyper);
  CHECK(a.to_vector() == a_copy.to_vector());
  CHECK(b.to_vector() == b_copy.to_vector());
  CHECK(adam.state(0, 0).step == 1);
  CHECK(adam.state(0, 1).step == 5);
  CHECK(adam.state(0, 1).exp_avg_sq.to_vector() == b_v.to_vector());
}

TEST_CASE("a checkpointed optimizer state is restored whole or not at all") {
  Tensor weight = random_f32(6, 11);
  weight.set_requires_grad(true);
  Adam adam(single_group({weight}, 0.01));
  ParamState partial;
  partial.step = 2;
  partial.tensors = {{"exp_avg", random_f32(6, 12)}};
  CHECK_THROWS_WITH_AS(adam.set_param_state(0, 0, partial),
                       "AdamW: state needs exp_avg, exp_avg_sq together, or none",
                       std::invalid_argument);
  ParamState none;
  none.step = 0;
  adam.set_param_state(0, 0, none);
  CHECK(adam.param_state(0, 0).tensors.empty());
  ParamState whole = partial;
  whole.tensors.push_back({"exp_avg_sq", random_f32(6, 13, 0.0, 1e-4)});
  adam.set_param_state(0, 0, whole);
  ParamState saved = adam.param_state(0, 0);
  REQUIRE(saved.tensors.size() == 2);
  CHECK(saved.step == 2);
  CHECK(saved.tensors[1].second.to_vector() == whole.tensors[1].second.to_vector());
}

TEST_CASE("sum_of_squares_equals_a_plain_double_loop_for_every_floating_dtype") {
  std::vector<Tensor> tensors;
  for (DType dtype : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
    for (int64_t numel : {int64_t(0), int64_t(1), int64_t(1000), int64_t(70001)}) {
      tensors.push_back(ops::to_dtype(random_f32(numel, uint32_t(numel) + 7, -3.0, 3.0), dtype));
    }
  }
  tensors.push_back(ops::transpose(ops::view(random_f32(12, 9), {3, 4}), 0, 1));  // strided
  std::vector<double> sums = ops::sum_of_squares(tensors);
  REQUIRE(sums.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    double expected = 0.0;
    for (double x : tensors[i].to_vector()) expected += x * x;  // to_vector: exact, in order
    CHECK_MESSAGE(sums[i] == expected, "tensor " << i);
  }
  CHECK(ops::sum_of_squares({}).empty());
}

TEST_CASE("sum_of_squares_is_non_finite_exactly_when_a_value_is") {
  const float max = std::numeric_limits<float>::max();
  Tensor huge = full({1000}, double(max));  // finite: 1000 * 1.2e77 is far from overflow
  Tensor with_inf = random_f32(100, 1), with_nan = random_f32(100, 2);
  with_inf.data_ptr<float>()[57] = -std::numeric_limits<float>::infinity();
  with_nan.data_ptr<float>()[3] = std::numeric_limits<float>::quiet_NaN();
  Tensor half_inf = ops::to_dtype(with_inf, DType::f16);
  std::vector<double> sums = ops::sum_of_squares({huge, with_inf, with_nan, half_inf});
  CHECK(std::isfinite(sums[0]));
  CHECK(sums[1] == std::numeric_limits<double>::infinity());
  CHECK(std::isnan(sums[2]));
  CHECK_FALSE(std::isfinite(sums[3]));
}

TEST_CASE("fused_update_and_sum_of_squares_arguments_are_checked_with_the_index") {
  Tensor p = zeros({4}), g = zeros({4}), m = zeros({4}), v = zeros({4});
  AdamStepConstants adam_k = adam_step_constants({});
  std::vector<AdamOperands> wrong_numel = {{p, g, m, v}, {p, zeros({3}), m, v}};
  CHECK_THROWS_WITH_AS(ops::adam_update(wrong_numel, adam_k),
                       doctest::Contains("tensors[1].grad: expected a contiguous f32 tensor on "
                                         "cpu with 4 elements, got f32 [3] on cpu"),
                       std::invalid_argument);
  std::vector<AdamOperands> wrong_dtype = {{p, g, zeros({4}, {.dtype = DType::f64}), v}};
  CHECK_THROWS_WITH_AS(ops::adam_update(wrong_dtype, adam_k),
                       doctest::Contains("tensors[0].exp_avg"), std::invalid_argument);
  Tensor strided = ops::transpose(zeros({2, 2}), 0, 1);
  std::vector<AdamOperands> not_contiguous = {{p, g, m, strided}};
  CHECK_THROWS_WITH_AS(ops::adam_update(not_contiguous, adam_k),
                       doctest::Contains("not contiguous"), std::invalid_argument);
  std::vector<AdamOperands> undefined = {{p, g, Tensor(), v}};
  CHECK_THROWS_WITH_AS(ops::adam_update(undefined, adam_k), doctest::Contains("got undefined"),
                       std::invalid_argument);

  SgdStepConstants momentum_k = sgd_step_constants({.momentum = 0.9}, false);
  std::vector<SgdOperands> missing_buffer = {{p, g, Tensor()}};
  CHECK_THROWS_WITH_AS(ops::sgd_update(missing_buffer, momentum_k),
                       doctest::Contains("tensors[0].momentum_buffer"), std::invalid_argument);
  // Without momentum the buffer is not needed.
  ops::sgd_update(missing_buffer, sgd_step_constants({}, true));

  CHECK_THROWS_WITH_AS(ops::sum_of_squares({p, zeros({2}, {.dtype = DType::i64})}),
                       doctest::Contains("sum_of_squares: tensors[1]: expected a floating"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::sum_of_squares({p, Tensor()}), doctest::Contains("got undefined"),
                       std::invalid_argument);
}
