// Neural-network kernels without autograd: softmax, cross entropy, conv, pooling, layer norm,
// embedding, dropout. Each forward returns what its backward needs.
#pragma once

#include <utility>

#include "core/backend.h"
#include "core/generator.h"
#include "core/tensor.h"

namespace zt::ops {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// grad wrt the input from grad wrt the output and the forward output.
Tensor softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim, bool log);

struct CrossEntropyForward {
  Tensor losses;     // [N], 0 at ignored targets
  Tensor log_probs;  // [N, C]
};
// logits [N, C], target i64 [N].
CrossEntropyForward cross_entropy_forward(const Tensor& logits, const Tensor& target,
                                          int64_t ignore_index = -100,
                                          double label_smoothing = 0.0);
Tensor cross_entropy_backward(const Tensor& grad_losses, const CrossEntropyForward& saved,
                              const Tensor& target, int64_t ignore_index, double label_smoothing);

// input [N, C_in, H, W], weight [C_out, C_in/groups, KH, KW], bias [C_out] or undefined.
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const Conv2dParams& params);
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dParams& params);
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& input,
                              const Shape& weight_shape, const Conv2dParams& params);

struct MaxPoolForward {
  Tensor out;
  Tensor indices;  // i64
};
MaxPoolForward max_pool2d(const Tensor& input, const Pool2dParams& params);
Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& input_shape);
Tensor avg_pool2d(const Tensor& input, const Pool2dParams& params);
Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape,
                           const Pool2dParams& params);

struct LayerNormForward {
  Tensor out;
  Tensor mean;  // [rows]
  Tensor rstd;  // [rows]
};
// Normalises over the last normalized_shape.size() dims; weight/bias may be undefined.
LayerNormForward layer_norm(const Tensor& input, const Shape& normalized_shape,
                            const Tensor& weight, const Tensor& bias, double eps = 1e-5);
struct LayerNormGrads {
  Tensor input, weight, bias;  // weight/bias undefined when not requested
};
LayerNormGrads layer_norm_backward(const Tensor& grad_out, const Tensor& input,
                                   const Shape& normalized_shape, const LayerNormForward& saved,
                                   const Tensor& weight, bool need_weight_grad,
                                   bool need_bias_grad);

// weight [V, D], indices i64 of any shape -> [..., D].
Tensor embedding(const Tensor& weight, const Tensor& indices);
Tensor embedding_backward(const Tensor& grad_out, const Tensor& indices, int64_t num_weights,
                          int64_t padding_idx = -1);

struct DropoutForward {
  Tensor out;
  Tensor mask;  // u8
};
// p in [0, 1); draws from `generator` (default generator when null).
DropoutForward dropout(const Tensor& input, double p, Generator* generator = nullptr);
Tensor dropout_backward(const Tensor& grad_out, const Tensor& mask, double p);

}  // namespace zt::ops
