// The elementwise measures the 16-bit comparisons bound their differences by: the largest
// magnitude of a tensor and the largest difference between two of the same shape, in f64.
#pragma once

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

}  // namespace zt::testing
