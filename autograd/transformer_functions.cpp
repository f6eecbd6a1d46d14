// rms_norm and rotary_embedding. For now the composed mathematics of transformer_reference.cpp;
// fused kernels replace them.
#include "autograd/functions.h"

namespace zt {

Tensor rms_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                std::optional<double> eps) {
  return rms_norm_math(input, normalized_shape, weight, eps);
}

Tensor rotary_embedding(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  return rotary_embedding_math(x, cos, sin);
}

}  // namespace zt
