// Reductions without autograd. `dims` empty means all dimensions. keepdim keeps reduced
// dimensions as size 1. Reducing a zero-size dimension: sum gives 0, mean/var NaN, max/min/
// argmax/argmin throw std::invalid_argument.
#pragma once

#include <vector>

#include "core/backend.h"
#include "core/tensor.h"

namespace zt::ops {

Tensor reduce(ReduceOp op, const Tensor& x, const Shape& dims, bool keepdim,
              int64_t correction = 1);
Tensor sum(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor amax(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor var(const Tensor& x, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);  // i64
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);  // i64
// Without a dim: the index into the flattened x (PyTorch's dim=None).
Tensor argmax(const Tensor& x);
Tensor argmin(const Tensor& x);

// Sums `x` down to `shape` (the inverse of broadcasting `shape` to x's shape): the gradient
// of a broadcast input.
Tensor sum_to_shape(const Tensor& x, const Shape& shape);

// The sum of squares of each tensor, in f64, as one backend call (Backend::sum_of_squares:
// deterministic; a non-finite result means the tensor holds an inf or a NaN). The tensors must
// be defined, floating and on one device; non-contiguous ones are made contiguous first.
// Returns host values, so it waits for the device.
std::vector<double> sum_of_squares(const std::vector<Tensor>& tensors);

}  // namespace zt::ops
