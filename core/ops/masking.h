// Masking ops without autograd: keep one triangle of each matrix (tril, triu) and replace
// masked elements by a value (masked_fill), with PyTorch's semantics. The causal mask of
// attention is tril of ones, or masked_fill(scores, triu(ones, 1), -inf).
#pragma once

#include "core/tensor.h"

namespace zt::ops {

// x [..., rows, cols] (at least 2 dims, any dtype): elements with col - row <= diagonal are
// kept, the rest are 0. diagonal 0 is the main diagonal, > 0 above it, < 0 below it.
Tensor tril(const Tensor& x, int64_t diagonal = 0);
// Keeps col - row >= diagonal.
Tensor triu(const Tensor& x, int64_t diagonal = 0);
// A copy of x with `value` where mask is nonzero; mask is u8 (bool) and broadcasts to x's
// shape (the result always has x's shape and dtype).
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

}  // namespace zt::ops
