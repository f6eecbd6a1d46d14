// The k largest (or smallest) elements along one dimension, without autograd, and the scatter
// that is their backward.
#pragma once

#include "core/tensor.h"

namespace zt::ops {

struct TopK {
  Tensor values;   // x's dtype, x's shape with size k at dim
  Tensor indices;  // i64, positions along dim
};

// Best first along dim; the lower index first among equal values; NaN ranks above every
// number. `sorted` = false is accepted and returns the same (sorted) order, which PyTorch's
// "unspecified order" allows. k must be in [0, size of dim].
TopK topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true, bool sorted = true);
// Zeros of input_shape with grad_values[..., j, ...] added at indices[..., j, ...] along dim.
Tensor topk_backward(const Tensor& grad_values, const Tensor& indices, const Shape& input_shape,
                     int64_t dim);

}  // namespace zt::ops
