// Finite-difference gradient check in f64. The output of `fn` is projected to a scalar,
// sum(output * fixed random weights), so every output element is checked at once; its analytic
// gradient (one backward) is compared with central differences, element by element, for every
// input that requires grad. Inputs that require grad must be f64 leaves on the CPU; they may be
// non-contiguous views (the check perturbs them in place through their strides).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace zt::autograd {

struct GradcheckResult {
  bool passed = true;
  // The worst element: the one with the largest |analytic - numeric| / (atol + rtol |numeric|).
  double worst_ratio = 0.0;
  double worst_abs_error = 0.0;
  size_t worst_input = 0;
  int64_t worst_element = 0;  // row-major index within that input
  double analytic = 0.0, numeric = 0.0;
  int64_t elements_checked = 0;
  std::string message;  // one line, for test output
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>& inputs)>;

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                          double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3);

}  // namespace zt::autograd
