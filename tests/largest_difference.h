// The elementwise measures the tests bound their differences by, in f64: the largest magnitude
// of a tensor, the largest difference between two of the same size, and that difference
// relative to the reference's largest magnitude.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/tensor.h"

namespace zt::testing {

inline double largest_magnitude(const Tensor& a) {
  double largest = 0.0;
  for (double value : a.to(DType::f64).contiguous().to_vector())
    largest = std::max(largest, std::fabs(value));
  return largest;
}

inline double largest_difference(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to(DType::f64).contiguous().to_vector(),
                      y = b.to(DType::f64).contiguous().to_vector();
  double largest = 0.0;
  for (size_t i = 0; i < x.size(); ++i) largest = std::max(largest, std::fabs(x[i] - y[i]));
  return largest;
}

// The largest |a - b| over the largest |b|: a difference relative to the reference `b`'s scale
// (elementwise ratios would blow up where b passes near zero).
inline double largest_relative_difference(const std::vector<double>& x,
                                          const std::vector<double>& y) {
  REQUIRE(x.size() == y.size());
  double worst = 0, largest = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    worst = std::max(worst, std::abs(x[i] - y[i]));
    largest = std::max(largest, std::abs(y[i]));
  }
  return worst / largest;
}
inline double largest_relative_difference(const Tensor& a, const Tensor& b) {
  return largest_relative_difference(a.to_vector(), b.to_vector());
}

}  // namespace zt::testing
