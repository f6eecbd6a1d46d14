// Helpers shared by the kernel tests (gemm, conv, pool, softmax, layer norm, embedding):
// deterministic random inputs, and an element-by-element comparison against reference values
// computed in double by plain loops inside each test. Tolerances scale with the dtype.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/tensor.h"

namespace zt::test {

inline std::vector<double> random_values(size_t count, uint32_t seed, double low = -1.0,
                                         double high = 1.0) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> distribution(low, high);
  std::vector<double> values(count);
  for (double& value : values) value = distribution(engine);
  return values;
}

inline Tensor random_tensor(const Shape& shape, uint32_t seed, DType dtype = DType::f32,
                            double low = -1.0, double high = 1.0) {
  return from_values(random_values(size_t(shape_numel(shape)), seed, low, high), shape,
                     TensorOptions{.dtype = dtype});
}

// Relative precision of one rounding in each floating dtype.
inline double unit_roundoff(DType dtype) {
  switch (dtype) {
    case DType::f64:
      return 1.1e-16;
    case DType::f32:
      return 6.0e-8;
    case DType::f16:
      return 4.9e-4;
    case DType::bf16:
      return 3.9e-3;
    default:
      return 0.0;
  }
}

// Checks |actual - expected| <= atol + rtol * |expected| for every element and reports the
// first mismatch with its position (one failing CHECK per call, not one per element).
inline void check_close(const Tensor& actual, const std::vector<double>& expected, double rtol,
                        double atol, const std::string& what = "") {
  std::vector<double> values = actual.to_vector();
  REQUIRE_MESSAGE(values.size() == expected.size(), what);
  for (size_t i = 0; i < values.size(); ++i) {
    double bound = atol + rtol * std::abs(expected[i]);
    bool close = std::abs(values[i] - expected[i]) <= bound ||
                 (std::isnan(values[i]) && std::isnan(expected[i]));
    if (!close) {
      CHECK_MESSAGE(close, what << " element " << i << ": got " << values[i] << ", expected "
                                << expected[i] << " (bound " << bound << ")");
      return;
    }
  }
}

// Exact equality of two tensors' values (for thread-count independence).
inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  std::vector<double> left = a.to_vector(), right = b.to_vector();
  if (left.size() != right.size()) return false;
  for (size_t i = 0; i < left.size(); ++i) {
    if (left[i] != right[i] && !(std::isnan(left[i]) && std::isnan(right[i]))) return false;
  }
  return true;
}

}  // namespace zt::test
