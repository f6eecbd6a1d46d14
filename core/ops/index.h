// Joining, splitting and indexing without autograd.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace zt::ops {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
// Views of consecutive pieces of `split_size` along dim (the last may be smaller).
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim);
std::vector<Tensor> split_with_sizes(const Tensor& x, const Shape& sizes, int64_t dim);
// indices: i64 1-d; an index outside the dim throws std::out_of_range naming it.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& indices);
// A copy of `x` with out[..., indices[i], ...] += source[..., i, ...] (the backward of
// index_select).
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& indices, const Tensor& source);

}  // namespace zt::ops
