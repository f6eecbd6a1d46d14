// Views and conversions without autograd. Views share storage with their input.
// Errors (bad dims, incompatible sizes) throw std::invalid_argument / std::out_of_range with
// the op name and the shapes involved.
#pragma once

#include <optional>

#include "core/tensor.h"

namespace zt::ops {

// Resolves one -1 in `shape` against numel; throws if impossible.
Shape infer_shape(const Shape& shape, int64_t numel);
// The strides a view of `tensor` with `shape` would have, or empty if no view is possible.
std::optional<Shape> view_strides(const Tensor& tensor, const Shape& shape);

Tensor as_strided(const Tensor& tensor, const Shape& sizes, const Shape& strides, int64_t offset);
Tensor view(const Tensor& tensor, const Shape& shape);
Tensor reshape(const Tensor& tensor, const Shape& shape);
Tensor flatten(const Tensor& tensor, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor transpose(const Tensor& tensor, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& tensor, const Shape& dims);
Tensor narrow(const Tensor& tensor, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& tensor, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& tensor, int64_t dim, int64_t index);
Tensor expand(const Tensor& tensor, const Shape& shape);
Tensor squeeze(const Tensor& tensor, int64_t dim);
Tensor squeeze(const Tensor& tensor);
Tensor unsqueeze(const Tensor& tensor, int64_t dim);
// A tensor sharing the impl's data but with no autograd metadata.
Tensor alias(const Tensor& tensor);

Tensor contiguous(const Tensor& tensor);             // the same tensor when already contiguous
Tensor clone(const Tensor& tensor);                  // always a contiguous copy, same tag
Tensor to_dtype(const Tensor& tensor, DType dtype);  // the same tensor when dtype matches
// A contiguous copy on `device` with the same dtype and tag; the same tensor when it is there.
Tensor to_device(const Tensor& tensor, Device device);
// dst = src, src broadcast to dst's shape; dtypes and devices may differ. dst may be a view.
void copy_(const Tensor& dst, const Tensor& src);
void fill_(const Tensor& dst, double value);

}  // namespace zt::ops
