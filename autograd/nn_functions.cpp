// Differentiable neural-network ops over the fused kernels of core/ops/nn.h: softmax,
// convolution, pooling, layer norm, embedding and dropout. Each forward keeps exactly what its
// *_backward kernel reads; integer inputs (indices) never get a gradient.
#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/ops/nn.h"

namespace zt {

using autograd::record;
using Grads = std::vector<Tensor>;

Tensor softmax(const Tensor& x, int64_t dim) {
  Tensor out = ops::softmax(x, dim);
  return record("SoftmaxBackward", {x}, out, [out = out.detach(), dim](const Tensor& g) {
    return Grads{ops::softmax_backward(g, out, dim, /*log=*/false)};
  });
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  Tensor out = ops::log_softmax(x, dim);
  return record("LogSoftmaxBackward", {x}, out, [out = out.detach(), dim](const Tensor& g) {
    return Grads{ops::softmax_backward(g, out, dim, /*log=*/true)};
  });
}

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const Conv2dParams& params) {
  return record(
      "Conv2dBackward", {input, weight, bias}, ops::conv2d(input, weight, bias, params),
      [input = input.detach(), weight = weight.detach(), params,
       input_needs_grad = input.requires_grad(), weight_needs_grad = weight.requires_grad(),
       bias_needs_grad = bias.defined() && bias.requires_grad()](const Tensor& g) {
        Tensor gi, gw, gb;
        if (input_needs_grad) gi = ops::conv2d_backward_input(g, weight, input.sizes(), params);
        if (weight_needs_grad) gw = ops::conv2d_backward_weight(g, input, weight.sizes(), params);
        // Planes first, then images: both reductions read contiguous rows, where summing
        // {0, 2, 3} at once would first copy g into channel-major order.
        if (bias_needs_grad) gb = ops::sum(ops::sum(g, {2, 3}), {0});
        return Grads{gi, gw, gb};
      });
}

Tensor max_pool2d(const Tensor& input, const Pool2dParams& params) {
  ops::MaxPoolForward forward = ops::max_pool2d(input, params);
  return record("MaxPool2dBackward", {input}, forward.out,
                [indices = forward.indices, input_shape = input.sizes()](const Tensor& g) {
                  return Grads{ops::max_pool2d_backward(g, indices, input_shape)};
                });
}

Tensor avg_pool2d(const Tensor& input, const Pool2dParams& params) {
  return record("AvgPool2dBackward", {input}, ops::avg_pool2d(input, params),
                [input_shape = input.sizes(), params](const Tensor& g) {
                  return Grads{ops::avg_pool2d_backward(g, input_shape, params)};
                });
}

Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  ops::LayerNormForward forward = ops::layer_norm(input, normalized_shape, weight, bias, eps);
  Tensor out = forward.out;
  // The backward kernel reads the input and the row statistics, not the output: dropping it
  // keeps the node from holding its own output.
  forward.out = Tensor();
  return record("LayerNormBackward", {input, weight, bias}, out,
                [input = input.detach(), weight = weight.defined() ? weight.detach() : Tensor(),
                 normalized_shape, forward, input_needs_grad = input.requires_grad(),
                 weight_needs_grad = weight.defined() && weight.requires_grad(),
                 bias_needs_grad = bias.defined() && bias.requires_grad()](const Tensor& g) {
                  ops::LayerNormGrads grads =
                      ops::layer_norm_backward(g, input, normalized_shape, forward, weight,
                                               weight_needs_grad, bias_needs_grad);
                  return Grads{input_needs_grad ? grads.input : Tensor(), grads.weight, grads.bias};
                });
}

Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx) {
  // A padding_idx past the table would silently exclude nothing, so it is an error.
  if (weight.defined() && weight.dim() == 2 &&
      (padding_idx < -1 || padding_idx >= weight.size(0))) {
    throw std::invalid_argument(
        fmt::format("embedding: padding_idx must be -1 (none) or in [0, {}), got {}",
                    weight.size(0), padding_idx));
  }
  return record(
      "EmbeddingBackward", {weight}, ops::embedding(weight, indices),
      [indices = indices.detach(), num_weights = weight.size(0), padding_idx](const Tensor& g) {
        return Grads{ops::embedding_backward(g, indices, num_weights, padding_idx)};
      });
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* generator) {
  if (!(p >= 0.0 && p <= 1.0)) {
    throw std::invalid_argument(fmt::format("dropout: p must be in [0, 1], got {}", p));
  }
  if (!training || p == 0.0) return x;
  if (p == 1.0) return mul(x, 0.0);  // everything dropped; the gradient is zero too
  ops::DropoutForward forward = ops::dropout(x, p, generator);
  return record("DropoutBackward", {x}, forward.out, [mask = forward.mask, p](const Tensor& g) {
    return Grads{ops::dropout_backward(g, mask, p)};
  });
}

}  // namespace zt
