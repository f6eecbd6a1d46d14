// Views (sharing storage) and conversions, without autograd.
// Invariant: a view never copies; reshape copies only when no strides can express the shape.
#include "core/ops/view.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/backend.h"
#include "core/factory.h"

namespace zt::ops {

static Tensor make_view(const Tensor& base, Shape sizes, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->sizes = std::move(sizes);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Shape infer_shape(const Shape& shape, int64_t numel) {
  Shape result = shape;
  int64_t known = 1;
  int64_t inferred_dim = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (inferred_dim >= 0) {
        throw std::invalid_argument(
            fmt::format("shape {}: only one dimension can be -1", shape_str(shape)));
      }
      inferred_dim = int64_t(i);
    } else if (shape[i] < 0) {
      throw std::invalid_argument(
          fmt::format("shape {}: invalid size {}", shape_str(shape), shape[i]));
    } else {
      known *= shape[i];
    }
  }
  if (inferred_dim >= 0) {
    if (known == 0 || numel % known != 0) {
      throw std::invalid_argument(
          fmt::format("shape {} is invalid for a tensor of {} elements", shape_str(shape), numel));
    }
    result[size_t(inferred_dim)] = numel / known;
  } else if (known != numel) {
    throw std::invalid_argument(
        fmt::format("shape {} is invalid for a tensor of {} elements", shape_str(shape), numel));
  }
  return result;
}

// Groups the old dims into chunks that are contiguous with each other and matches the new
// dims against those chunks; a new shape that splits across a chunk boundary cannot be a view.
std::optional<Shape> view_strides(const Tensor& tensor, const Shape& shape) {
  const Shape& old_sizes = tensor.sizes();
  const Shape& old_strides = tensor.strides();
  Shape new_strides(shape.size(), 1);
  if (old_sizes.empty() || tensor.numel() == 0) return contiguous_strides(shape);
  int64_t view_dim = int64_t(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1;
  int64_t view_numel = 1;
  for (int64_t tensor_dim = int64_t(old_sizes.size()) - 1; tensor_dim >= 0; --tensor_dim) {
    tensor_numel *= old_sizes[size_t(tensor_dim)];
    bool chunk_ends = tensor_dim == 0 ||
                      (old_sizes[size_t(tensor_dim - 1)] != 1 &&
                       old_strides[size_t(tensor_dim - 1)] != tensor_numel * chunk_base_stride);
    if (!chunk_ends) continue;
    while (view_dim >= 0 && (view_numel < tensor_numel || shape[size_t(view_dim)] == 1)) {
      new_strides[size_t(view_dim)] = view_numel * chunk_base_stride;
      view_numel *= shape[size_t(view_dim)];
      --view_dim;
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (tensor_dim > 0) {
      chunk_base_stride = old_strides[size_t(tensor_dim - 1)];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  if (view_dim != -1) return std::nullopt;
  return new_strides;
}

Tensor as_strided(const Tensor& tensor, const Shape& sizes, const Shape& strides, int64_t offset) {
  if (sizes.size() != strides.size()) {
    throw std::invalid_argument(fmt::format("as_strided: sizes {} and strides {} differ in rank",
                                            shape_str(sizes), shape_str(strides)));
  }
  int64_t last_element = offset;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 0 || strides[i] < 0) {
      throw std::invalid_argument(fmt::format("as_strided: negative size or stride in {} / {}",
                                              shape_str(sizes), shape_str(strides)));
    }
    if (sizes[i] == 0)
      last_element = offset - 1;
    else if (last_element >= offset)
      last_element += (sizes[i] - 1) * strides[i];
  }
  int64_t storage_elements = int64_t(tensor.storage()->bytes() / tensor.element_size());
  if (offset < 0 || (shape_numel(sizes) > 0 && last_element >= storage_elements)) {
    throw std::out_of_range(
        fmt::format("as_strided: sizes {} strides {} offset {} reach past a storage of {} elements",
                    shape_str(sizes), shape_str(strides), offset, storage_elements));
  }
  return make_view(tensor, sizes, strides, offset);
}

Tensor view(const Tensor& tensor, const Shape& shape) {
  Shape sizes = infer_shape(shape, tensor.numel());
  std::optional<Shape> strides = view_strides(tensor, sizes);
  if (!strides) {
    throw std::invalid_argument(
        fmt::format("view: a tensor of shape {} and strides {} cannot be viewed as {}; use reshape",
                    shape_str(tensor.sizes()), shape_str(tensor.strides()), shape_str(sizes)));
  }
  return make_view(tensor, sizes, *strides, tensor.storage_offset());
}

Tensor reshape(const Tensor& tensor, const Shape& shape) {
  Shape sizes = infer_shape(shape, tensor.numel());
  if (std::optional<Shape> strides = view_strides(tensor, sizes)) {
    return make_view(tensor, sizes, *strides, tensor.storage_offset());
  }
  return view(contiguous(tensor), sizes);
}

Tensor flatten(const Tensor& tensor, int64_t start_dim, int64_t end_dim) {
  if (tensor.dim() == 0) return reshape(tensor, {1});
  int64_t start = wrap_dim(start_dim, tensor.dim(), "flatten start_dim");
  int64_t end = wrap_dim(end_dim, tensor.dim(), "flatten end_dim");
  if (start > end) {
    throw std::invalid_argument(
        fmt::format("flatten: start_dim {} comes after end_dim {}", start_dim, end_dim));
  }
  Shape shape(tensor.sizes().begin(), tensor.sizes().begin() + start);
  int64_t merged = 1;
  for (int64_t d = start; d <= end; ++d) merged *= tensor.size(d);
  shape.push_back(merged);
  shape.insert(shape.end(), tensor.sizes().begin() + end + 1, tensor.sizes().end());
  return reshape(tensor, shape);
}

Tensor transpose(const Tensor& tensor, int64_t dim0, int64_t dim1) {
  int64_t first = wrap_dim(dim0, tensor.dim(), "transpose dim0");
  int64_t second = wrap_dim(dim1, tensor.dim(), "transpose dim1");
  Shape sizes = tensor.sizes();
  Shape strides = tensor.strides();
  std::swap(sizes[size_t(first)], sizes[size_t(second)]);
  std::swap(strides[size_t(first)], strides[size_t(second)]);
  return make_view(tensor, sizes, strides, tensor.storage_offset());
}

Tensor permute(const Tensor& tensor, const Shape& dims) {
  if (int64_t(dims.size()) != tensor.dim()) {
    throw std::invalid_argument(fmt::format("permute: dims {} do not match a tensor of rank {}",
                                            shape_str(dims), tensor.dim()));
  }
  Shape sizes(dims.size());
  Shape strides(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t source = wrap_dim(dims[i], tensor.dim(), "permute dim");
    if (seen[size_t(source)]) {
      throw std::invalid_argument(fmt::format("permute: dims {} repeat a dim", shape_str(dims)));
    }
    seen[size_t(source)] = true;
    sizes[i] = tensor.size(source);
    strides[i] = tensor.stride(source);
  }
  return make_view(tensor, sizes, strides, tensor.storage_offset());
}

Tensor slice(const Tensor& tensor, int64_t dim, int64_t start, int64_t end, int64_t step) {
  int64_t d = wrap_dim(dim, tensor.dim(), "slice dim");
  if (step <= 0) throw std::invalid_argument(fmt::format("slice: step {} must be positive", step));
  int64_t length = tensor.size(d);
  // Python slice semantics: negative bounds count from the end, out-of-range bounds clamp.
  auto clamp_bound = [length](int64_t bound) {
    if (bound < 0) bound += length;
    return std::clamp<int64_t>(bound, 0, length);
  };
  int64_t first = clamp_bound(start);
  int64_t last = std::max(first, clamp_bound(end));
  Shape sizes = tensor.sizes();
  Shape strides = tensor.strides();
  sizes[size_t(d)] = (last - first + step - 1) / step;
  strides[size_t(d)] *= step;
  return make_view(tensor, sizes, strides, tensor.storage_offset() + first * tensor.stride(d));
}

Tensor narrow(const Tensor& tensor, int64_t dim, int64_t start, int64_t length) {
  int64_t d = wrap_dim(dim, tensor.dim(), "narrow dim");
  int64_t size = tensor.size(d);
  if (start < 0) start += size;
  if (start < 0 || length < 0 || start + length > size) {
    throw std::out_of_range(fmt::format("narrow: start {} length {} exceed size {} of dim {}",
                                        start, length, size, dim));
  }
  return slice(tensor, d, start, start + length, 1);
}

Tensor select(const Tensor& tensor, int64_t dim, int64_t index) {
  int64_t d = wrap_dim(dim, tensor.dim(), "select dim");
  int64_t size = tensor.size(d);
  int64_t position = index < 0 ? index + size : index;
  if (position < 0 || position >= size) {
    throw std::out_of_range(
        fmt::format("select: index {} is out of range for dim {} of size {}", index, dim, size));
  }
  Shape sizes = tensor.sizes();
  Shape strides = tensor.strides();
  int64_t offset = tensor.storage_offset() + position * strides[size_t(d)];
  sizes.erase(sizes.begin() + d);
  strides.erase(strides.begin() + d);
  return make_view(tensor, sizes, strides, offset);
}

Tensor expand(const Tensor& tensor, const Shape& shape) {
  int64_t rank = int64_t(shape.size());
  if (rank < tensor.dim()) {
    throw std::invalid_argument(fmt::format("expand: cannot expand shape {} to fewer dims {}",
                                            shape_str(tensor.sizes()), shape_str(shape)));
  }
  Shape sizes(static_cast<size_t>(rank));
  Shape strides(static_cast<size_t>(rank));
  int64_t leading = rank - tensor.dim();
  for (int64_t i = 0; i < rank; ++i) {
    int64_t target = shape[size_t(i)];
    if (i < leading) {
      if (target < 0) {
        throw std::invalid_argument(
            fmt::format("expand: -1 is not allowed for new leading dim "
                        "{} in {}",
                        i, shape_str(shape)));
      }
      sizes[size_t(i)] = target;
      strides[size_t(i)] = 0;
      continue;
    }
    int64_t source = tensor.size(i - leading);
    if (target == -1) target = source;
    if (source == target) {
      sizes[size_t(i)] = source;
      strides[size_t(i)] = tensor.stride(i - leading);
    } else if (source == 1) {
      sizes[size_t(i)] = target;
      strides[size_t(i)] = 0;
    } else {
      throw std::invalid_argument(fmt::format("expand: shape {} cannot be expanded to {}",
                                              shape_str(tensor.sizes()), shape_str(shape)));
    }
  }
  return make_view(tensor, sizes, strides, tensor.storage_offset());
}

Tensor squeeze(const Tensor& tensor, int64_t dim) {
  int64_t d = wrap_dim(dim, tensor.dim(), "squeeze dim");
  if (tensor.size(d) != 1) return alias(tensor);
  Shape sizes = tensor.sizes();
  Shape strides = tensor.strides();
  sizes.erase(sizes.begin() + d);
  strides.erase(strides.begin() + d);
  return make_view(tensor, sizes, strides, tensor.storage_offset());
}

Tensor squeeze(const Tensor& tensor) {
  Shape sizes;
  Shape strides;
  for (int64_t d = 0; d < tensor.dim(); ++d) {
    if (tensor.size(d) == 1) continue;
    sizes.push_back(tensor.size(d));
    strides.push_back(tensor.stride(d));
  }
  return make_view(tensor, sizes, strides, tensor.storage_offset());
}

Tensor unsqueeze(const Tensor& tensor, int64_t dim) {
  int64_t d = wrap_dim(dim, tensor.dim() + 1, "unsqueeze dim");
  Shape sizes = tensor.sizes();
  Shape strides = tensor.strides();
  int64_t stride = d < tensor.dim() ? tensor.stride(d) * tensor.size(d) : 1;
  sizes.insert(sizes.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return make_view(tensor, sizes, strides, tensor.storage_offset());
}

Tensor alias(const Tensor& tensor) {
  return make_view(tensor, tensor.sizes(), tensor.strides(), tensor.storage_offset());
}

static Tensor copy_into_new(const Tensor& tensor, DType dtype, MemoryTag tag) {
  Tensor out = empty(tensor.sizes(), {.dtype = dtype, .device = tensor.device(), .tag = tag});
  backend_for(tensor.device()).copy(tensor, out);
  return out;
}

Tensor contiguous(const Tensor& tensor) {
  if (tensor.is_contiguous()) return tensor;
  return copy_into_new(tensor, tensor.dtype(), current_memory_tag());
}

Tensor clone(const Tensor& tensor) {
  return copy_into_new(tensor, tensor.dtype(), tensor.storage()->tag());
}

Tensor to_dtype(const Tensor& tensor, DType dtype) {
  if (tensor.dtype() == dtype) return tensor;
  return copy_into_new(tensor, dtype, current_memory_tag());
}

Tensor to_device(const Tensor& tensor, Device device) {
  if (tensor.device() == device) return tensor;
  Tensor out = empty(tensor.sizes(),
                     {.dtype = tensor.dtype(), .device = device, .tag = tensor.storage()->tag()});
  if (out.numel() > 0) backend_for_copy(tensor.device(), device).copy(tensor, out);
  return out;
}

void copy_(const Tensor& dst, const Tensor& src) {
  Tensor source = expand(src, dst.sizes());
  if (dst.device() != src.device()) {
    if (dst.numel() > 0) backend_for_copy(src.device(), dst.device()).copy(source, dst);
    return;
  }
  // Overlapping source and destination would read values already overwritten.
  bool same_view =
      source.storage_offset() == dst.storage_offset() && source.strides() == dst.strides();
  if (source.storage() == dst.storage() && !same_view) source = clone(source);
  if (same_view && source.storage() == dst.storage() && source.dtype() == dst.dtype()) return;
  backend_for(dst.device()).copy(source, dst);
}

void fill_(const Tensor& dst, double value) {
  backend_for(dst.device()).fill(dst, value);
}

}  // namespace zt::ops
