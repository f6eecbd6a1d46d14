// gradcheck: analytic gradients from one backward against central differences
// (f(x + eps) - f(x - eps)) / 2 eps of the same scalar projection, input element by element.
// Each perturbed element is restored exactly before moving on.
#include "autograd/gradcheck.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "autograd/functions.h"
#include "core/factory.h"
#include "core/ops/view.h"

namespace zt::autograd {

namespace {

// Storage position (in elements, from the tensor's first element) of row-major element `index`.
int64_t strided_position(const Tensor& tensor, int64_t index) {
  int64_t position = 0;
  for (int64_t d = tensor.dim() - 1; d >= 0; --d) {
    int64_t size = tensor.size(d);
    position += (index % size) * tensor.stride(d);
    index /= size;
  }
  return position;
}

void check_inputs(const std::vector<Tensor>& inputs) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    if (!input.defined() || !input.requires_grad()) continue;
    if (input.dtype() != DType::f64 || !input.device().is_cpu() || !input.is_leaf()) {
      throw std::invalid_argument(fmt::format(
          "gradcheck: input {} must be an f64 CPU leaf, got {} on {}{}", i,
          dtype_name(input.dtype()), input.device().str(), input.is_leaf() ? "" : " (non-leaf)"));
    }
  }
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs, double eps,
                          double atol, double rtol) {
  check_inputs(inputs);
  Tensor output = fn(inputs);
  if (output.dtype() != DType::f64) {
    throw std::invalid_argument(
        fmt::format("gradcheck: fn must return f64, got {}", dtype_name(output.dtype())));
  }
  Generator weight_generator(20240607);
  Tensor weights = uniform(output.sizes(), 0.5, 1.5, {.dtype = DType::f64}, &weight_generator);
  auto projection = [&](const Tensor& out) { return sum(mul(out, weights)); };

  // Analytic: one backward from the projection, starting from cleared gradients.
  for (const Tensor& input : inputs) {
    if (input.defined() && input.requires_grad()) input.set_grad(Tensor());
  }
  if (!output.requires_grad()) {
    throw std::invalid_argument("gradcheck: fn's output does not require grad");
  }
  projection(output).backward();
  std::vector<std::vector<double>> analytic(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    if (!input.defined() || !input.requires_grad()) continue;
    analytic[i] = input.grad().defined() ? input.grad().to_vector()
                                         : std::vector<double>(size_t(input.numel()), 0.0);
  }

  // Numeric: central differences, element by element, with recording off.
  NoGradGuard no_grad;
  auto evaluate = [&] { return projection(fn(inputs)).item(); };
  GradcheckResult result;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    if (!input.defined() || !input.requires_grad()) continue;
    double* first = input.data_ptr<double>();
    for (int64_t element = 0; element < input.numel(); ++element) {
      double& value = first[strided_position(input, element)];
      const double original = value;
      value = original + eps;
      double above = evaluate();
      value = original - eps;
      double below = evaluate();
      value = original;
      double numeric = (above - below) / (2 * eps);
      double analytic_value = analytic[i][size_t(element)];
      double abs_error = std::abs(analytic_value - numeric);
      double ratio = abs_error / (atol + rtol * std::abs(numeric));
      if (std::isnan(ratio)) ratio = INFINITY;
      ++result.elements_checked;
      if (ratio > result.worst_ratio || result.elements_checked == 1) {
        result.worst_ratio = ratio;
        result.worst_abs_error = abs_error;
        result.worst_input = i;
        result.worst_element = element;
        result.analytic = analytic_value;
        result.numeric = numeric;
      }
    }
  }
  result.passed = result.worst_ratio <= 1.0;
  result.message = fmt::format(
      "gradcheck {}: {} elements checked; worst: input {} element {}: analytic {:.10g}, "
      "numeric {:.10g}, |error| {:.3g} ({:.3g} of the tolerance atol {:g} + rtol {:g} * "
      "|numeric|)",
      result.passed ? "passed" : "FAILED", result.elements_checked, result.worst_input,
      result.worst_element, result.analytic, result.numeric, result.worst_abs_error,
      result.worst_ratio, atol, rtol);
  return result;
}

}  // namespace zt::autograd
