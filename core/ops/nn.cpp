// The neural-network ops of core/ops/nn.h (conv2d and pooling: core/ops/conv_pool.cpp): validate
// shapes, dtypes and devices, make inputs contiguous, allocate outputs and call one backend kernel.
// Every error names the op, the argument and the shapes. Nothing here records autograd.
#include "core/ops/nn.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/factory.h"
#include "core/ops/nn_op_checks.h"
#include "core/ops/view.h"

namespace zt::ops {

using namespace nn_op_checks;

// ---- softmax ------------------------------------------------------------------------------

static Tensor softmax_impl(const char* op, const Tensor& x, int64_t dim, bool log) {
  require_floating(op, "input", x);
  return along_last_dim(x, dim, [&](const Tensor& rows) {
    Tensor out = empty(rows.sizes(), output_options(rows));
    if (out.numel() > 0) backend_of(rows).softmax_forward(rows, out, log);
    return out;
  });
}

Tensor softmax(const Tensor& x, int64_t dim) {
  return softmax_impl("softmax", x, dim, false);
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_impl("log_softmax", x, dim, true);
}

Tensor softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim, bool log) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  require_floating(op, "out", out);
  require_like(op, "grad_out", grad_out, "out", out);
  require_shape(op, "grad_out", grad_out, out.sizes());
  int64_t rank = std::max<int64_t>(1, out.dim());
  int64_t wrapped = wrap_dim(dim, rank, "dim");
  int64_t last = rank - 1;
  auto moved = [&](const Tensor& t) {
    return contiguous(t.dim() == 0 ? t : transpose(t, wrapped, last));
  };
  Tensor grad_rows = moved(grad_out), out_rows = moved(out);
  Tensor grad_in = empty(out_rows.sizes(), output_options(out));
  if (grad_in.numel() > 0) backend_of(out).softmax_backward(grad_rows, out_rows, grad_in, log);
  if (out.dim() == 0 || wrapped == last) return grad_in;
  return contiguous(transpose(grad_in, wrapped, last));
}

// ---- cross entropy ------------------------------------------------------------------------

static void check_cross_entropy(const char* op, const Tensor& logits, const Tensor& target,
                                double label_smoothing) {
  require_floating(op, "logits", logits);
  require_dtype(op, "target", target, DType::i64);
  if (logits.dim() != 2 || target.dim() != 1 || target.size(0) != logits.size(0)) {
    throw std::invalid_argument(
        fmt::format("{}: expected logits [N, C] and target [N], got logits {} and target {}", op,
                    shape_str(logits.sizes()), shape_str(target.sizes())));
  }
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
    throw std::invalid_argument(
        fmt::format("{}: label_smoothing must be in [0, 1], got {}", op, label_smoothing));
  }
}

CrossEntropyForward cross_entropy_forward(const Tensor& logits, const Tensor& target,
                                          int64_t ignore_index, double label_smoothing) {
  check_cross_entropy("cross_entropy", logits, target, label_smoothing);
  Tensor logits_rows = contiguous(logits), targets = contiguous(target);
  CrossEntropyForward result;
  result.losses = empty({logits.size(0)}, output_options(logits));
  result.log_probs = empty(logits.sizes(), output_options(logits));
  backend_of(logits).cross_entropy_forward(logits_rows, targets, ignore_index, label_smoothing,
                                           result.losses, result.log_probs);
  return result;
}

Tensor cross_entropy_backward(const Tensor& grad_losses, const CrossEntropyForward& saved,
                              const Tensor& target, int64_t ignore_index, double label_smoothing) {
  const char* op = "cross_entropy_backward";
  check_cross_entropy(op, saved.log_probs, target, label_smoothing);
  require_like(op, "grad_losses", grad_losses, "log_probs", saved.log_probs);
  require_shape(op, "grad_losses", grad_losses, {saved.log_probs.size(0)});
  Tensor grad_logits = empty(saved.log_probs.sizes(), output_options(saved.log_probs));
  backend_of(grad_logits)
      .cross_entropy_backward(contiguous(grad_losses), contiguous(saved.log_probs),
                              contiguous(target), ignore_index, label_smoothing, grad_logits);
  return grad_logits;
}

// ---- layer norm ---------------------------------------------------------------------------

static DType stat_dtype(DType dtype) {
  return is_half(dtype) ? DType::f32 : dtype;
}

LayerNormForward layer_norm(const Tensor& input, const Shape& normalized_shape,
                            const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  require_floating(op, "input", input);
  int64_t cols = normalized_cols(op, input, normalized_shape);
  int64_t rows = cols > 0 ? input.numel() / cols : 0;
  if (weight.defined()) {
    require_like(op, "weight", weight, "input", input);
    require_shape(op, "weight", weight, normalized_shape);
  }
  if (bias.defined()) {
    require_like(op, "bias", bias, "input", input);
    require_shape(op, "bias", bias, normalized_shape);
  }
  Tensor rows_view = reshape(contiguous(input), {rows, cols});
  LayerNormForward result;
  result.out = empty(input.sizes(), output_options(input));
  result.mean = empty({rows}, output_options(input, stat_dtype(input.dtype())));
  result.rstd = empty({rows}, output_options(input, stat_dtype(input.dtype())));
  if (input.numel() == 0) return result;
  backend_of(input).layer_norm_forward(
      rows_view, weight.defined() ? reshape(contiguous(weight), {cols}) : Tensor(),
      bias.defined() ? reshape(contiguous(bias), {cols}) : Tensor(), eps,
      view(result.out, {rows, cols}), result.mean, result.rstd);
  return result;
}

LayerNormGrads layer_norm_backward(const Tensor& grad_out, const Tensor& input,
                                   const Shape& normalized_shape, const LayerNormForward& saved,
                                   const Tensor& weight, bool need_weight_grad,
                                   bool need_bias_grad) {
  const char* op = "layer_norm_backward";
  require_floating(op, "input", input);
  require_like(op, "grad_out", grad_out, "input", input);
  require_shape(op, "grad_out", grad_out, input.sizes());
  int64_t cols = normalized_cols(op, input, normalized_shape);
  int64_t rows = cols > 0 ? input.numel() / cols : 0;
  require_shape(op, "mean", saved.mean, {rows});
  require_shape(op, "rstd", saved.rstd, {rows});
  require_dtype(op, "mean", saved.mean, stat_dtype(input.dtype()));
  require_dtype(op, "rstd", saved.rstd, stat_dtype(input.dtype()));
  if (weight.defined()) {
    require_like(op, "weight", weight, "input", input);
    require_shape(op, "weight", weight, normalized_shape);
  }
  if (need_weight_grad && !weight.defined()) {
    throw std::invalid_argument(
        fmt::format("{}: a weight gradient was requested but weight is undefined", op));
  }
  LayerNormGrads grads;
  grads.input = empty(input.sizes(), output_options(input));
  if (need_weight_grad) grads.weight = zeros(normalized_shape, output_options(input));
  if (need_bias_grad) grads.bias = zeros(normalized_shape, output_options(input));
  if (input.numel() == 0) return grads;
  backend_of(input).layer_norm_backward(
      reshape(contiguous(grad_out), {rows, cols}), reshape(contiguous(input), {rows, cols}),
      contiguous(saved.mean), contiguous(saved.rstd),
      weight.defined() ? reshape(contiguous(weight), {cols}) : Tensor(),
      view(grads.input, {rows, cols}), need_weight_grad ? view(grads.weight, {cols}) : Tensor(),
      need_bias_grad ? view(grads.bias, {cols}) : Tensor());
  return grads;
}

// ---- embedding ----------------------------------------------------------------------------

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  const char* op = "embedding";
  require_defined(op, "weight", weight);
  require_dtype(op, "indices", indices, DType::i64);
  if (weight.dim() != 2) {
    throw std::invalid_argument(
        fmt::format("{}: weight should be 2-d [V, D], got {}", op, shape_str(weight.sizes())));
  }
  Shape out_shape = indices.sizes();
  out_shape.push_back(weight.size(1));
  Tensor out = empty(out_shape, output_options(weight));
  backend_of(weight).embedding_forward(contiguous(weight), contiguous(indices), out);
  return out;
}

Tensor embedding_backward(const Tensor& grad_out, const Tensor& indices, int64_t num_weights,
                          int64_t padding_idx) {
  const char* op = "embedding_backward";
  require_floating(op, "grad_out", grad_out);
  require_dtype(op, "indices", indices, DType::i64);
  Shape expected = indices.sizes();
  expected.push_back(grad_out.dim() > 0 ? grad_out.size(-1) : 0);
  require_shape(op, "grad_out", grad_out, expected);
  int64_t width = grad_out.size(-1);
  Tensor grad_weight = zeros({num_weights, width}, output_options(grad_out));
  backend_of(grad_out).embedding_backward(reshape(contiguous(grad_out), {indices.numel(), width}),
                                          contiguous(indices), grad_weight, padding_idx);
  return grad_weight;
}

// ---- dropout ------------------------------------------------------------------------------

DropoutForward dropout(const Tensor& input, double p, Generator* generator) {
  require_floating("dropout", "input", input);
  if (!(p >= 0.0 && p < 1.0)) {
    throw std::invalid_argument(fmt::format("dropout: p must be in [0, 1), got {}", p));
  }
  Generator& source = generator != nullptr ? *generator : default_generator();
  uint64_t offset = source.reserve(uint64_t(input.numel()));
  DropoutForward result;
  result.out = empty(input.sizes(), output_options(input));
  result.mask = empty(input.sizes(), output_options(input, DType::u8));
  backend_of(input).dropout_forward(contiguous(input), result.out, result.mask, p, source.seed(),
                                    offset);
  return result;
}

Tensor dropout_backward(const Tensor& grad_out, const Tensor& mask, double p) {
  require_floating("dropout_backward", "grad_out", grad_out);
  require_dtype("dropout_backward", "mask", mask, DType::u8);
  require_shape("dropout_backward", "mask", mask, grad_out.sizes());
  Tensor grad_input = empty(grad_out.sizes(), output_options(grad_out));
  backend_of(grad_out).dropout_backward(contiguous(grad_out), contiguous(mask), p, grad_input);
  return grad_input;
}

}  // namespace zt::ops
