// rms_norm and rotary_embedding over the fused kernels of core/ops/transformer.h. Each node
// keeps only what its backward kernel reads: the input and the per-row rstd for rms_norm,
// nothing but the tables for rotary_embedding (its backward is the rotation by -angle).
#include <stdexcept>

#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/ops/transformer.h"

namespace zt {

using autograd::record;
using Grads = std::vector<Tensor>;

Tensor rms_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                std::optional<double> eps) {
  if (!input.defined()) throw std::invalid_argument("rms_norm: input is undefined");
  const double epsilon =
      eps.value_or(is_floating(input.dtype()) ? dtype_epsilon(input.dtype()) : 1.0);
  ops::RmsNormForward forward = ops::rms_norm(input, normalized_shape, weight, epsilon);
  return record("RmsNormBackward", {input, weight}, forward.out,
                [input = input.detach(), weight = weight.defined() ? weight.detach() : Tensor(),
                 normalized_shape, rstd = forward.rstd, input_needs_grad = input.requires_grad(),
                 weight_needs_grad = weight.defined() && weight.requires_grad()](const Tensor& g) {
                  ops::RmsNormGrads grads = ops::rms_norm_backward(g, input, normalized_shape, rstd,
                                                                   weight, weight_needs_grad);
                  return Grads{input_needs_grad ? grads.input : Tensor(), grads.weight};
                });
}

Tensor rotary_embedding(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  // Tables that require grad (learned angles) need the gradient of the products, which the
  // composed form gives; the fused node differentiates x only.
  if (autograd::any_requires_grad({cos, sin})) return rotary_embedding_math(x, cos, sin);
  Tensor out = ops::rotary_embedding(x, cos, sin);
  return record("RotaryEmbeddingBackward", {x}, out,
                [cos = cos.detach(), sin = sin.detach()](const Tensor& g) {
                  return Grads{ops::rotary_embedding(g, cos, sin, /*inverse=*/true)};
                });
}

}  // namespace zt
