// The transformer ops composed from primitive differentiable ops. Every intermediate (the
// [..., L, S] scores of attention among them) is kept by the graph, so these are slow and
// memory-hungry; they exist as the references the fused kernels are tested against.
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "autograd/functions.h"
#include "core/factory.h"
#include "core/ops/masking.h"

namespace zt {

namespace {

// Position (l, s) may attend when the causal rule or the boolean mask says so.
Tensor attention_bias(const Tensor& attn_mask, bool is_causal, int64_t L, int64_t S,
                      const Tensor& like) {
  const auto options = options_of(like).with_dtype(like.dtype());
  if (is_causal) {
    const Tensor keep = ops::tril(ones({L, S}, options.with_dtype(DType::u8)));
    return ops::masked_fill(zeros({L, S}, options), ops::eq(keep, zeros_like(keep)),
                            -std::numeric_limits<double>::infinity());
  }
  if (attn_mask.dtype() == DType::u8) {
    return ops::masked_fill(zeros(attn_mask.sizes(), options),
                            ops::eq(attn_mask, zeros_like(attn_mask)),
                            -std::numeric_limits<double>::infinity());
  }
  return attn_mask;
}

}  // namespace

Tensor scaled_dot_product_attention_math(const Tensor& q, const Tensor& k, const Tensor& v,
                                         const Tensor& attn_mask, double dropout_p, bool is_causal,
                                         std::optional<double> scale, Generator* generator) {
  if (q.dim() < 2 || k.dim() < 2 || v.dim() < 2) {
    throw std::invalid_argument(
        fmt::format("scaled_dot_product_attention: q, k and v need at least 2 dims, got {}, {} "
                    "and {}",
                    shape_str(q.sizes()), shape_str(k.sizes()), shape_str(v.sizes())));
  }
  if (is_causal && attn_mask.defined()) {
    throw std::invalid_argument(
        "scaled_dot_product_attention: give attn_mask or is_causal, not both");
  }
  const int64_t L = q.size(-2), S = k.size(-2);
  const double factor = scale.value_or(1.0 / std::sqrt(double(q.size(-1))));
  Tensor scores = mul(matmul(q, k.transpose(-2, -1)), factor);
  if (is_causal || attn_mask.defined()) {
    scores = add(scores, attention_bias(attn_mask, is_causal, L, S, scores));
  }
  // A row with nothing to attend (every key masked) gets weights 0, hence output 0 and no
  // gradient, as PyTorch returns; a plain softmax would give NaN there. Its scores become 0
  // before the softmax (so nothing is NaN, even in the backward) and its weights 0 after it.
  Tensor empty_rows;
  if ((is_causal || attn_mask.defined()) && S > 0) {
    const Tensor row_max = ops::amax(scores.detach(), {-1}, /*keepdim=*/true);
    empty_rows =
        ops::eq(row_max, ops::scalar_like(-std::numeric_limits<double>::infinity(), row_max));
    scores = masked_fill(scores, empty_rows, 0.0);
  }
  Tensor weights = softmax(scores, -1);
  if (empty_rows.defined()) weights = masked_fill(weights, empty_rows, 0.0);
  if (dropout_p > 0.0) weights = dropout(weights, dropout_p, /*training=*/true, generator);
  return matmul(weights, v);
}

Tensor rms_norm_math(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                     std::optional<double> eps) {
  const int64_t n = int64_t(normalized_shape.size());
  if (n == 0 || n > input.dim()) {
    throw std::invalid_argument(fmt::format("rms_norm: normalized_shape {} does not fit input {}",
                                            shape_str(normalized_shape), shape_str(input.sizes())));
  }
  Shape dims;
  for (int64_t d = input.dim() - n; d < input.dim(); ++d) {
    if (input.size(d) != normalized_shape[size_t(d - (input.dim() - n))]) {
      throw std::invalid_argument(fmt::format("rms_norm: normalized_shape {} does not end input {}",
                                              shape_str(normalized_shape),
                                              shape_str(input.sizes())));
    }
    dims.push_back(d);
  }
  const Tensor mean_square = mean(mul(input, input), dims, /*keepdim=*/true);
  Tensor out = mul(input, rsqrt(add(mean_square, eps.value_or(dtype_epsilon(input.dtype())))));
  return weight.defined() ? mul(out, weight) : out;
}

Tensor rotary_embedding_math(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  const int64_t D = x.size(-1), half = D / 2;
  if (x.dim() < 2 || D % 2 != 0 || cos.sizes() != Shape{x.size(-2), half} ||
      sin.sizes() != cos.sizes()) {
    throw std::invalid_argument(fmt::format(
        "rotary_embedding: expected x [..., T, D] with D even and cos, sin [T, D/2], got {}, {} "
        "and {}",
        shape_str(x.sizes()), shape_str(cos.sizes()), shape_str(sin.sizes())));
  }
  const Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return cat({sub(mul(x1, cos), mul(x2, sin)), add(mul(x2, cos), mul(x1, sin))}, -1);
}

std::pair<Tensor, Tensor> rotary_tables(int64_t start, int64_t length, int64_t head_dim,
                                        double theta, const TensorOptions& options) {
  if (start < 0 || length < 0 || head_dim <= 0 || head_dim % 2 != 0 || !(theta > 0.0)) {
    throw std::invalid_argument(fmt::format(
        "rotary_tables: expected start >= 0, length >= 0, an even head_dim > 0 and theta > 0, "
        "got {}, {}, {} and {}",
        start, length, head_dim, theta));
  }
  const int64_t half = head_dim / 2;
  std::vector<double> cos_values(size_t(length * half)), sin_values(cos_values.size());
  for (int64_t t = 0; t < length; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double inverse_frequency = std::pow(theta, -double(2 * i) / double(head_dim));
      const double angle = double(start + t) * inverse_frequency;
      cos_values[size_t(t * half + i)] = std::cos(angle);
      sin_values[size_t(t * half + i)] = std::sin(angle);
    }
  }
  const TensorOptions f64_cpu = TensorOptions{}.with_dtype(DType::f64);
  auto table = [&](const std::vector<double>& values) {
    return from_values(values, {length, half}, f64_cpu).to(options.dtype).to(options.device);
  };
  return {table(cos_values), table(sin_values)};
}

}  // namespace zt
