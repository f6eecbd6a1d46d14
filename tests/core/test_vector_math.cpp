// The CPU's vectorisable f32 exp and tanh (core/cpu/vector_math.h) against libm in double over
// their whole useful range and at the special values, and f32 gelu_tanh through them alike in
// its vector and strided loops.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/vector_math.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace {

using zt::cpu::vector_exp;
using zt::cpu::vector_tanh;

}  // namespace

TEST_CASE("vector_exp is within 3 ulp of exp over [-87, 88]") {
  double worst = 0.0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0013f) {
    double exact = std::exp(double(x));
    worst = std::max(worst, std::fabs(double(vector_exp(x)) - exact) / exact);
  }
  CHECK(worst < 3.0 * std::numeric_limits<float>::epsilon());
  CHECK(vector_exp(0.0f) == 1.0f);
  CHECK(vector_exp(-1000.0f) < 1e-37f);
  CHECK(std::isnan(vector_exp(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("vector_tanh: 2 ulp of 1 absolute, relative near zero, exact limits") {
  double worst_absolute = 0.0, worst_relative_near_zero = 0.0;
  for (float x = -12.0f; x <= 12.0f; x += 0.00037f) {
    double exact = std::tanh(double(x));
    double error = std::fabs(double(vector_tanh(x)) - exact);
    worst_absolute = std::max(worst_absolute, error);
    if (std::fabs(x) < 0.625f && x != 0.0f) {
      worst_relative_near_zero = std::max(worst_relative_near_zero, error / std::fabs(exact));
    }
  }
  CHECK(worst_absolute < 2.0 * std::numeric_limits<float>::epsilon());
  CHECK(worst_relative_near_zero < 3.0 * std::numeric_limits<float>::epsilon());
  CHECK(vector_tanh(1e-30f) == 1e-30f);
  CHECK(vector_tanh(0.0f) == 0.0f);
  CHECK(vector_tanh(20.0f) == 1.0f);
  CHECK(vector_tanh(-std::numeric_limits<float>::infinity()) == -1.0f);
  CHECK(std::isnan(vector_tanh(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("f32 gelu_tanh: contiguous (vector clones) and strided loops give the same bits") {
  // 4099 values (not a multiple of any vector width) over [-12, 12]; the strided view reads
  // every other element of a tensor twice the size.
  const int64_t count = 4099;
  std::vector<double> values(static_cast<size_t>(count), 0.0);
  for (int64_t i = 0; i < count; ++i) values[size_t(i)] = -12.0 + 24.0 * double(i) / (count - 1);
  zt::Tensor x = zt::from_values(values, {count});
  zt::Tensor wide = zt::zeros({count, 2});
  zt::ops::copy_(zt::ops::select(wide, 1, 0), x);
  zt::Tensor strided = zt::ops::select(wide, 1, 0);
  REQUIRE(!strided.is_contiguous());
  std::vector<double> dense = zt::ops::gelu(x, true).to_vector();
  CHECK(zt::ops::gelu(strided, true).to_vector() == dense);
  zt::Tensor grad = zt::ops::add(zt::ops::mul(x, 0.25), 1.0);
  zt::Tensor dense_grad = zt::ops::binary(zt::BinaryOp::gelu_tanh_backward, grad, x);
  zt::Tensor strided_grad = zt::ops::binary(zt::BinaryOp::gelu_tanh_backward, grad, strided);
  CHECK(strided_grad.to_vector() == dense_grad.to_vector());
  // And both within f32 rounding of the formula in double.
  double worst = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    double v = double(float(values[size_t(i)]));
    double want = 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    worst = std::max(worst, std::fabs(dense[size_t(i)] - want) / (1.0 + std::fabs(want)));
  }
  CHECK(worst < 4.0 * std::numeric_limits<float>::epsilon());
}
