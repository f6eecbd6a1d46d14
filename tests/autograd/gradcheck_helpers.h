// Helpers for the autograd tests: f64 leaves (contiguous, transposed, strided, away from zero,
// tie-free) from fixed seeds, and check_gradients, which runs gradcheck and reports the worst
// element on failure.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "core/factory.h"

namespace zt::test {

inline Tensor as_leaf(const Tensor& values) {
  values.set_requires_grad(true);
  return values;
}

// Uniform in [low, high), requires grad.
inline Tensor f64_leaf(const Shape& shape, uint64_t seed, double low = -1.0, double high = 1.0) {
  Generator generator(seed);
  return as_leaf(uniform(shape, low, high, {.dtype = DType::f64}, &generator));
}

// A non-contiguous leaf of `shape`: the transpose of a [.., shape[-1], shape[-2]] tensor.
inline Tensor transposed_leaf(const Shape& shape, uint64_t seed, double low = -1.0,
                              double high = 1.0) {
  Shape stored = shape;
  std::swap(stored[stored.size() - 1], stored[stored.size() - 2]);
  Generator generator(seed);
  Tensor base = uniform(stored, low, high, {.dtype = DType::f64}, &generator);
  NoGradGuard no_grad;
  Tensor view = base.transpose(-1, -2);
  return as_leaf(view);
}

// A non-contiguous leaf of `shape`: every other element of the last dim of a wider tensor.
inline Tensor strided_leaf(const Shape& shape, uint64_t seed, double low = -1.0,
                           double high = 1.0) {
  Shape stored = shape;
  stored.back() *= 2;
  Generator generator(seed);
  Tensor base = uniform(stored, low, high, {.dtype = DType::f64}, &generator);
  NoGradGuard no_grad;
  Tensor view = base.slice(-1, 0, stored.back(), 2);
  return as_leaf(view);
}

// Values in +-[0.2, 1): safe for abs and relu, whose derivative jumps at 0.
inline Tensor away_from_zero_leaf(const Shape& shape, uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> magnitude(0.2, 1.0);
  std::vector<double> values(size_t(shape_numel(shape)));
  for (double& value : values) value = (engine() % 2 ? 1.0 : -1.0) * magnitude(engine);
  return as_leaf(from_values(values, shape, {.dtype = DType::f64}));
}

// Distinct values at least 0.1 apart in a shuffled order: no ties for max/min/pooling.
inline Tensor distinct_leaf(const Shape& shape, uint64_t seed) {
  std::vector<double> values(size_t(shape_numel(shape)));
  std::iota(values.begin(), values.end(), 0.0);
  std::shuffle(values.begin(), values.end(), std::mt19937_64(seed));
  for (double& value : values) value = value * 0.1 - 0.05 * double(values.size());
  return as_leaf(from_values(values, shape, {.dtype = DType::f64}));
}

inline Tensor indices_tensor(const std::vector<int64_t>& values, const Shape& shape) {
  return from_int64(values, shape);
}

inline void check_gradients(const autograd::GradcheckFn& fn, const std::vector<Tensor>& inputs,
                            double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3) {
  autograd::GradcheckResult result = autograd::gradcheck(fn, inputs, eps, atol, rtol);
  CHECK_MESSAGE(result.passed, result.message);
  CHECK(result.elements_checked > 0);
}

}  // namespace zt::test
