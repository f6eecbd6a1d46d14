// Inputs and the comparison of the block-sparse attention tests: random leaves that require
// grad, and the largest elementwise difference of two tensors.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/factory.h"
#include "core/generator.h"

namespace zt::testing {

inline Tensor sparse_test_leaf(const Shape& shape, uint64_t seed, DType dtype = DType::f32) {
  Generator generator(seed);
  Tensor values = uniform(shape, -1.5, 1.5, {.dtype = dtype}, &generator);
  values.set_requires_grad(true);
  return values;
}

inline double max_difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

}  // namespace zt::testing
