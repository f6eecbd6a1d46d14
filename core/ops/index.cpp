// Joining, splitting and indexing along one dimension, without autograd.
// cat and stack copy each input into a narrow() view of one new output; split returns views;
// index_select / index_add validate here and leave the index range check to the kernel, which
// throws std::out_of_range naming the index and the size.
#include "core/ops/index.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/view.h"

namespace zt::ops {

namespace {

// PyTorch still accepts 1-d empty tensors in cat whatever the other shapes; they add nothing.
bool is_legacy_empty(const Tensor& tensor) {
  return tensor.dim() == 1 && tensor.numel() == 0;
}

std::string shapes_str(const std::vector<Tensor>& tensors) {
  std::string text;
  for (const Tensor& tensor : tensors) {
    if (!text.empty()) text += ", ";
    text += shape_str(tensor.sizes());
  }
  return text;
}

void check_indices_tensor(const char* op, const Tensor& indices) {
  if (!indices.defined() || indices.dtype() != DType::i64 || indices.dim() > 1) {
    throw std::invalid_argument(
        fmt::format("{}: indices must be an i64 tensor with at most 1 dim, got {} {}", op,
                    indices.defined() ? dtype_name(indices.dtype()) : "undefined",
                    indices.defined() ? shape_str(indices.sizes()) : ""));
  }
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) throw std::invalid_argument("cat: expected a non-empty list of tensors");
  const Tensor* reference = nullptr;
  for (const Tensor& tensor : tensors) {
    if (!tensor.defined()) throw std::invalid_argument("cat: a tensor in the list is undefined");
    if (reference == nullptr && !is_legacy_empty(tensor)) reference = &tensor;
  }
  if (reference == nullptr) return clone(tensors.front());
  int64_t wrapped = wrap_dim(dim, reference->dim(), "cat: dim");
  Shape out_shape = reference->sizes();
  out_shape[size_t(wrapped)] = 0;
  for (const Tensor& tensor : tensors) {
    if (is_legacy_empty(tensor) && tensor.dim() != reference->dim()) continue;
    bool same_rank = tensor.dim() == reference->dim();
    bool sizes_match = same_rank;
    for (int64_t d = 0; same_rank && d < tensor.dim(); ++d) {
      if (d != wrapped && tensor.size(d) != reference->size(d)) sizes_match = false;
    }
    if (!sizes_match) {
      throw std::invalid_argument(fmt::format("cat: tensors must match in every dim but {}: got {}",
                                              wrapped, shapes_str(tensors)));
    }
    if (tensor.dtype() != reference->dtype() || tensor.device() != reference->device()) {
      throw std::invalid_argument(
          fmt::format("cat: tensors must share dtype and device: {} on {} vs {} on {}",
                      dtype_name(tensor.dtype()), tensor.device().str(),
                      dtype_name(reference->dtype()), reference->device().str()));
    }
    out_shape[size_t(wrapped)] += tensor.size(wrapped);
  }
  Tensor out =
      empty(out_shape, TensorOptions{.dtype = reference->dtype(), .device = reference->device()});
  int64_t position = 0;
  for (const Tensor& tensor : tensors) {
    if (tensor.dim() != reference->dim()) continue;  // a legacy empty tensor
    int64_t length = tensor.size(wrapped);
    if (length > 0) copy_(narrow(out, wrapped, position, length), tensor);
    position += length;
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) throw std::invalid_argument("stack: expected a non-empty list of tensors");
  for (const Tensor& tensor : tensors) {
    if (!tensor.defined() || tensor.sizes() != tensors.front().sizes()) {
      throw std::invalid_argument(
          fmt::format("stack: tensors must all have the same shape, got {}", shapes_str(tensors)));
    }
  }
  int64_t wrapped = wrap_dim(dim, tensors.front().dim() + 1, "stack: dim");
  std::vector<Tensor> expanded;
  expanded.reserve(tensors.size());
  for (const Tensor& tensor : tensors) expanded.push_back(unsqueeze(tensor, wrapped));
  return cat(expanded, wrapped);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  int64_t wrapped = wrap_dim(dim, x.dim(), "split: dim");
  int64_t length = x.size(wrapped);
  if (split_size < 0 || (split_size == 0 && length != 0)) {
    throw std::invalid_argument(
        fmt::format("split: split_size must be positive, got {} for dim {} of {}", split_size,
                    wrapped, shape_str(x.sizes())));
  }
  std::vector<Tensor> pieces;
  if (length == 0) {
    pieces.push_back(x);
    return pieces;
  }
  for (int64_t start = 0; start < length; start += split_size) {
    pieces.push_back(narrow(x, wrapped, start, std::min(split_size, length - start)));
  }
  return pieces;
}

std::vector<Tensor> split_with_sizes(const Tensor& x, const Shape& sizes, int64_t dim) {
  int64_t wrapped = wrap_dim(dim, x.dim(), "split_with_sizes: dim");
  int64_t total = 0;
  for (int64_t size : sizes) {
    if (size < 0) {
      throw std::invalid_argument(
          fmt::format("split_with_sizes: sizes {} has a negative entry", shape_str(sizes)));
    }
    total += size;
  }
  if (total != x.size(wrapped)) {
    throw std::invalid_argument(
        fmt::format("split_with_sizes: sizes {} sum to {}, but dim {} of {} has size {}",
                    shape_str(sizes), total, wrapped, shape_str(x.sizes()), x.size(wrapped)));
  }
  std::vector<Tensor> pieces;
  int64_t start = 0;
  for (int64_t size : sizes) {
    pieces.push_back(narrow(x, wrapped, start, size));
    start += size;
  }
  return pieces;
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& indices) {
  check_indices_tensor("index_select", indices);
  int64_t rank = std::max<int64_t>(1, x.dim());
  int64_t wrapped = wrap_dim(dim, rank, "index_select: dim");
  Tensor source = x.dim() == 0 ? reshape(x, {1}) : contiguous(x);
  Tensor flat_indices = reshape(contiguous(indices), {indices.numel()});
  Shape out_shape = source.sizes();
  out_shape[size_t(wrapped)] = indices.numel();
  Tensor out = empty(out_shape, TensorOptions{.dtype = x.dtype(), .device = x.device()});
  backend_for(x.device()).index_select(source, wrapped, flat_indices, out);
  if (x.dim() == 0) return reshape(out, indices.dim() == 0 ? Shape{} : Shape{indices.numel()});
  return out;
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& indices, const Tensor& source) {
  check_indices_tensor("index_add", indices);
  int64_t wrapped = wrap_dim(dim, std::max<int64_t>(1, x.dim()), "index_add: dim");
  if (!source.defined() || source.dtype() != x.dtype() || source.device() != x.device()) {
    throw std::invalid_argument("index_add: source must be defined and share x's dtype and device");
  }
  Shape x_shape = x.dim() == 0 ? Shape{1} : x.sizes();
  Shape expected = x_shape;
  expected[size_t(wrapped)] = indices.numel();
  Shape source_shape = source.dim() == 0 ? Shape{1} : source.sizes();
  if (source_shape != expected) {
    throw std::invalid_argument(fmt::format(
        "index_add: source has shape {}, expected {} (x {} with dim {} replaced by {} indices)",
        shape_str(source.sizes()), shape_str(expected), shape_str(x.sizes()), wrapped,
        indices.numel()));
  }
  Tensor out = clone(x.dim() == 0 ? reshape(x, {1}) : x);
  backend_for(x.device())
      .index_add(out, wrapped, reshape(contiguous(indices), {indices.numel()}),
                 reshape(contiguous(source), source_shape));
  return x.dim() == 0 ? reshape(out, {}) : out;
}

}  // namespace zt::ops
