// Global-norm clipping. The norm sums squares tensor by tensor in a fixed order, in double,
// so it does not depend on the thread count.
#include "optim/clip_grad.h"

#include <cmath>
#include <stdexcept>

#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace zt::optim {

double global_grad_norm(const std::vector<Tensor>& params) {
  double sum_of_squares = 0.0;
  for (const Tensor& param : params) {
    Tensor grad = param.grad();
    if (!grad.defined()) continue;
    Tensor values = ops::contiguous(ops::to_dtype(grad, DType::f64));
    const double* data = values.data_ptr<double>();
    for (int64_t i = 0; i < values.numel(); ++i) sum_of_squares += data[i] * data[i];
  }
  return std::sqrt(sum_of_squares);
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  if (!(max_norm > 0.0)) throw std::invalid_argument("clip_grad_norm_: max_norm must be > 0");
  double norm = global_grad_norm(params);
  if (!std::isfinite(norm)) return norm;
  double coefficient = max_norm / (norm + 1e-6);
  if (coefficient >= 1.0) return norm;
  for (const Tensor& param : params) {
    Tensor grad = param.grad();
    if (grad.defined()) ops::mul_(grad, coefficient);
  }
  return norm;
}

}  // namespace zt::optim
