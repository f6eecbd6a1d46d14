// Cumulative sum along one dimension without autograd, with PyTorch's semantics.
#pragma once

#include "core/tensor.h"

namespace zt::ops {

// Inclusive prefix sums of x along dim (negative counts from the end; a 0-d x takes dim 0 or
// -1). Floating inputs keep their dtype (16-bit ones sum in f32); integer inputs (u8, i32,
// i64) give i64, as in PyTorch. reverse sums from the last element backwards (the backward).
Tensor cumsum(const Tensor& x, int64_t dim, bool reverse = false);

}  // namespace zt::ops
