// The transformer kernels without autograd: RMS norm and rotary position embedding. Each
// forward returns what its backward needs; the checks name the op and the argument.
#pragma once

#include "core/tensor.h"

namespace zt::ops {

struct RmsNormForward {
  Tensor out;
  Tensor rstd;  // [rows], f32 for 16-bit inputs
};
// Normalises over the last normalized_shape.size() dims; weight (normalized_shape) may be
// undefined. eps > 0 (the caller picks the dtype's epsilon as the default).
RmsNormForward rms_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                        double eps);
struct RmsNormGrads {
  Tensor input, weight;  // weight undefined when not requested
};
RmsNormGrads rms_norm_backward(const Tensor& grad_out, const Tensor& input,
                               const Shape& normalized_shape, const Tensor& rstd,
                               const Tensor& weight, bool need_weight_grad);

// x [..., T, D] with D even, cos and sin [T, D/2] of x's dtype and device. `inverse` rotates
// by -angle: the gradient of the forward rotation.
Tensor rotary_embedding(const Tensor& x, const Tensor& cos, const Tensor& sin,
                        bool inverse = false);

}  // namespace zt::ops
