// The ops of core/ops/transformer.h: validate shapes, dtypes and devices, make inputs
// contiguous, allocate outputs and call one backend kernel. Nothing here records autograd.
#include "core/ops/transformer.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/factory.h"
#include "core/ops/nn_op_checks.h"
#include "core/ops/view.h"

namespace zt::ops {

using namespace nn_op_checks;

namespace {

DType stat_dtype(DType dtype) {
  return is_half(dtype) ? DType::f32 : dtype;
}

void check_weight(const char* op, const Tensor& weight, const Tensor& input,
                  const Shape& normalized_shape) {
  if (!weight.defined()) return;
  require_like(op, "weight", weight, "input", input);
  require_shape(op, "weight", weight, normalized_shape);
}

}  // namespace

RmsNormForward rms_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                        double eps) {
  const char* op = "rms_norm";
  require_floating(op, "input", input);
  int64_t cols = normalized_cols(op, input, normalized_shape);
  int64_t rows = cols > 0 ? input.numel() / cols : 0;
  check_weight(op, weight, input, normalized_shape);
  if (!(eps > 0.0)) {
    throw std::invalid_argument(fmt::format("{}: eps must be > 0, got {}", op, eps));
  }
  RmsNormForward result;
  result.out = empty(input.sizes(), output_options(input));
  result.rstd = empty({rows}, output_options(input, stat_dtype(input.dtype())));
  if (input.numel() == 0) return result;
  backend_of(input).rms_norm_forward(
      reshape(contiguous(input), {rows, cols}),
      weight.defined() ? reshape(contiguous(weight), {cols}) : Tensor(), eps,
      view(result.out, {rows, cols}), result.rstd);
  return result;
}

RmsNormGrads rms_norm_backward(const Tensor& grad_out, const Tensor& input,
                               const Shape& normalized_shape, const Tensor& rstd,
                               const Tensor& weight, bool need_weight_grad) {
  const char* op = "rms_norm_backward";
  require_floating(op, "input", input);
  require_like(op, "grad_out", grad_out, "input", input);
  require_shape(op, "grad_out", grad_out, input.sizes());
  int64_t cols = normalized_cols(op, input, normalized_shape);
  int64_t rows = cols > 0 ? input.numel() / cols : 0;
  require_shape(op, "rstd", rstd, {rows});
  require_dtype(op, "rstd", rstd, stat_dtype(input.dtype()));
  check_weight(op, weight, input, normalized_shape);
  if (need_weight_grad && !weight.defined()) {
    throw std::invalid_argument(
        fmt::format("{}: a weight gradient was requested but weight is undefined", op));
  }
  RmsNormGrads grads;
  grads.input = empty(input.sizes(), output_options(input));
  if (need_weight_grad) grads.weight = zeros(normalized_shape, output_options(input));
  if (input.numel() == 0) return grads;
  backend_of(input).rms_norm_backward(
      reshape(contiguous(grad_out), {rows, cols}), reshape(contiguous(input), {rows, cols}),
      contiguous(rstd), weight.defined() ? reshape(contiguous(weight), {cols}) : Tensor(),
      view(grads.input, {rows, cols}), need_weight_grad ? view(grads.weight, {cols}) : Tensor());
  return grads;
}

Tensor rotary_embedding(const Tensor& x, const Tensor& cos, const Tensor& sin, bool inverse) {
  const char* op = "rotary_embedding";
  require_floating(op, "x", x);
  require_like(op, "cos", cos, "x", x);
  require_like(op, "sin", sin, "x", x);
  if (x.dim() < 2 || x.size(-1) % 2 != 0) {
    throw std::invalid_argument(
        fmt::format("{}: x must be [..., T, D] with D even, got {}", op, shape_str(x.sizes())));
  }
  const int64_t positions = x.size(-2), dim = x.size(-1);
  require_shape(op, "cos", cos, {positions, dim / 2});
  require_shape(op, "sin", sin, {positions, dim / 2});
  Tensor out = empty(x.sizes(), output_options(x));
  if (x.numel() == 0) return out;
  backend_of(x).rotary_embedding(contiguous(x), contiguous(cos), contiguous(sin), inverse, out);
  return out;
}

}  // namespace zt::ops
