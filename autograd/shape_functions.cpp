// Differentiable joining, splitting and indexing. cat/stack hand each input the matching view of
// the output gradient; split is a set of narrow views (each with its own node); index_select's
// gradient adds rows back with index_add, so repeated indices accumulate.
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/factory.h"
#include "core/ops/index.h"
#include "core/ops/view.h"

namespace zt {

using autograd::record;
using Grads = std::vector<Tensor>;

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  Tensor out = ops::cat(tensors, dim);
  if (!autograd::any_requires_grad(tensors)) return out;
  int64_t wrapped = wrap_dim(dim, tensors.front().dim(), "cat");
  Shape lengths;
  for (const Tensor& tensor : tensors) lengths.push_back(tensor.size(wrapped));
  return record("CatBackward", tensors, out, [lengths, wrapped](const Tensor& g) {
    Grads grads;
    int64_t start = 0;
    for (int64_t length : lengths) {
      grads.push_back(ops::narrow(g, wrapped, start, length));
      start += length;
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  Tensor out = ops::stack(tensors, dim);
  if (!autograd::any_requires_grad(tensors)) return out;
  int64_t wrapped = wrap_dim(dim, tensors.front().dim() + 1, "stack");
  return record("StackBackward", tensors, out, [count = tensors.size(), wrapped](const Tensor& g) {
    Grads grads;
    for (size_t i = 0; i < count; ++i) grads.push_back(ops::select(g, wrapped, int64_t(i)));
    return grads;
  });
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  if (split_size <= 0) {
    throw std::invalid_argument(
        fmt::format("split: split_size must be positive, got {}", split_size));
  }
  int64_t length = x.size(dim);
  Shape sizes;
  for (int64_t start = 0; start < length; start += split_size) {
    sizes.push_back(std::min(split_size, length - start));
  }
  if (sizes.empty()) sizes.push_back(0);  // a zero-length dim splits into one empty piece
  return split_with_sizes(x, sizes, dim);
}

std::vector<Tensor> split_with_sizes(const Tensor& x, const Shape& sizes, int64_t dim) {
  int64_t total = 0;
  for (int64_t size : sizes) total += size;
  if (total != x.size(dim)) {
    throw std::invalid_argument(
        fmt::format("split_with_sizes: sizes {} sum to {}, but dim {} of {} has size {}",
                    shape_str(sizes), total, dim, shape_str(x.sizes()), x.size(dim)));
  }
  std::vector<Tensor> pieces;
  int64_t start = 0;
  for (int64_t size : sizes) {
    pieces.push_back(x.narrow(dim, start, size));
    start += size;
  }
  return pieces;
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& indices) {
  return record("IndexSelectBackward", {x}, ops::index_select(x, dim, indices),
                [indices = indices.detach(), dim, input_shape = x.sizes()](const Tensor& g) {
                  Tensor zero = zeros(
                      input_shape, TensorOptions{}.with_dtype(g.dtype()).with_device(g.device()));
                  return Grads{ops::index_add(zero, dim, indices, g)};
                });
}

}  // namespace zt
