// How the CUDA op tests compare a device result with the CPU's (tests/cuda/test_cuda_*ops.cpp):
// random inputs built alike on both devices, and tolerances that scale with the dtype.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/index.h"
#include "core/ops/linalg.h"
#include "core/ops/nn.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"
#include "tests/cuda/cuda_test_util.h"

namespace zt::cuda_test {
inline constexpr DType kFloatDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};

inline double relative_tolerance(DType dtype) {
  switch (dtype) {
    case DType::f64:
      return 1e-10;
    case DType::f32:
      return 1e-5;
    case DType::f16:
      return 2e-3;
    case DType::bf16:
      return 1.6e-2;
    default:
      return 0.0;
  }
}

inline Tensor random_tensor(const Shape& shape, DType dtype, uint32_t seed, double low = -2.0,
                            double high = 2.0) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> distribution(low, high);
  std::vector<double> values(size_t(shape_numel(shape)));
  for (double& value : values) value = distribution(engine);
  return from_values(values, shape, {.dtype = dtype});
}

// |gpu - cpu| <= rtol * (|cpu| + floor * max|cpu|): relative, with a floor for values that
// cancel to near zero (sums of many terms: GEMM passes a larger floor).
inline void check_matches(const Tensor& gpu, const Tensor& cpu, const std::string& what,
                          double rtol_override = -1, double floor_fraction = 1e-3) {
  REQUIRE_MESSAGE(gpu.device() == kGpu, what);
  REQUIRE_MESSAGE(gpu.sizes() == cpu.sizes(), what);
  REQUIRE_MESSAGE(gpu.dtype() == cpu.dtype(), what);
  std::vector<double> actual = gpu.to_vector(), expected = cpu.to_vector();
  double rtol = rtol_override >= 0 ? rtol_override : relative_tolerance(cpu.dtype());
  double scale = 0;
  for (double value : expected) {
    if (std::isfinite(value)) scale = std::max(scale, std::abs(value));
  }
  for (size_t i = 0; i < actual.size(); ++i) {
    bool same = actual[i] == expected[i] || (std::isnan(actual[i]) && std::isnan(expected[i]));
    double bound = rtol * (std::abs(expected[i]) + floor_fraction * scale);
    if (!same && !(std::abs(actual[i] - expected[i]) <= bound)) {
      CHECK_MESSAGE(false, what << " element " << i << ": cuda " << actual[i] << ", cpu "
                                << expected[i] << " (bound " << bound << ")");
      return;
    }
  }
}

// Runs `op` on copies of `inputs` on each device and compares every output.
inline void compare(const std::vector<Tensor>& inputs,
                    const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& op,
                    const std::string& what, double rtol_override = -1,
                    double floor_fraction = 1e-3) {
  std::vector<Tensor> on_gpu;
  for (const Tensor& input : inputs) on_gpu.push_back(ops::to_device(input, kGpu));
  std::vector<Tensor> expected = op(inputs), actual = op(on_gpu);
  REQUIRE(expected.size() == actual.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    check_matches(actual[i], expected[i], what + " output " + std::to_string(i), rtol_override,
                  floor_fraction);
  }
}

}  // namespace zt::cuda_test
