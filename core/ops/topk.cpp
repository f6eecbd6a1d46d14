// topk moves the chosen dim last, lets the backend select over contiguous rows and moves the
// results back. Its backward scatters through index_add on the flattened gradient: row r's
// index j lands at r * n + j, and the indices of one row are distinct, so nothing collides.
#include "core/ops/topk.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/index.h"
#include "core/ops/view.h"

namespace zt::ops {

namespace {

// x viewed with `dim` last (0-d as [1]), contiguous.
Tensor with_dim_last(const Tensor& x, int64_t dim) {
  if (x.dim() == 0) return reshape(x, {1});
  return contiguous(transpose(x, dim, x.dim() - 1));
}

// The inverse of with_dim_last for a result of `rank` dims.
Tensor with_dim_back(const Tensor& moved, int64_t dim, int64_t rank) {
  if (rank == 0) return reshape(moved, {});
  return contiguous(transpose(moved, dim, rank - 1));
}

}  // namespace

TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest, bool /*sorted*/) {
  if (!x.defined()) throw std::invalid_argument("topk: input is undefined");
  if (x.dtype() == DType::u8) throw std::invalid_argument("topk: input must not be u8 (bool)");
  int64_t wrapped = wrap_dim(dim, std::max<int64_t>(1, x.dim()), "topk: dim");
  int64_t length = x.dim() == 0 ? 1 : x.size(wrapped);
  if (k < 0 || k > length) {
    throw std::invalid_argument(fmt::format("topk: k ({}) must be in [0, {}] for dim {} of {}", k,
                                            length, dim, shape_str(x.sizes())));
  }
  Tensor moved = with_dim_last(x, wrapped);
  Shape out_shape = moved.sizes();
  out_shape.back() = k;
  TopK result;
  result.values = empty(out_shape, TensorOptions{.dtype = x.dtype(), .device = x.device()});
  result.indices = empty(out_shape, TensorOptions{.dtype = DType::i64, .device = x.device()});
  int64_t rows = length == 0 ? 0 : moved.numel() / length;
  if (rows > 0 && k > 0) {
    backend_for(x.device())
        .topk(reshape(moved, {rows, length}), k, largest, reshape(result.values, {rows, k}),
              reshape(result.indices, {rows, k}));
  }
  result.values = with_dim_back(result.values, wrapped, x.dim());
  result.indices = with_dim_back(result.indices, wrapped, x.dim());
  return result;
}

Tensor topk_backward(const Tensor& grad_values, const Tensor& indices, const Shape& input_shape,
                     int64_t dim) {
  if (grad_values.sizes() != indices.sizes() || indices.dtype() != DType::i64) {
    throw std::invalid_argument(fmt::format(
        "topk_backward: indices must be i64 of grad_values' shape {}, got {} {}",
        shape_str(grad_values.sizes()), dtype_name(indices.dtype()), shape_str(indices.sizes())));
  }
  int64_t rank = int64_t(input_shape.size());
  int64_t wrapped = wrap_dim(dim, std::max<int64_t>(1, rank), "topk_backward: dim");
  Shape moved_shape = rank == 0 ? Shape{1} : input_shape;
  if (rank > 0) std::swap(moved_shape[size_t(wrapped)], moved_shape.back());
  int64_t length = moved_shape.back();
  Tensor grad = with_dim_last(grad_values, wrapped);
  int64_t k = grad.size(-1);
  int64_t rows = k == 0 ? 0 : grad.numel() / k;
  int64_t total = 1;
  for (int64_t size : moved_shape) total *= size;
  Tensor flat_grad = zeros({total}, options_of(grad_values));
  if (rows > 0) {
    Tensor row_starts = arange(0, double(rows * length), double(length),
                               TensorOptions{.dtype = DType::i64, .device = indices.device()});
    Tensor flat_indices =
        add(reshape(with_dim_last(indices, wrapped), {rows, k}), reshape(row_starts, {rows, 1}));
    flat_grad =
        index_add(flat_grad, 0, reshape(flat_indices, {rows * k}), reshape(grad, {rows * k}));
  }
  return with_dim_back(reshape(flat_grad, moved_shape), wrapped, rank);
}

}  // namespace zt::ops
