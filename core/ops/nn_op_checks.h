// The argument checks the neural-network ops share (core/ops/nn.cpp, conv_pool.cpp,
// transformer.cpp): each error names the op, the argument, and what was expected. Internal to
// core/ops/.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "core/tensor.h"

namespace zt::ops::nn_op_checks {

inline Backend& backend_of(const Tensor& tensor) {
  return backend_for(tensor.device());
}

inline TensorOptions output_options(const Tensor& like, DType dtype) {
  return TensorOptions().with_dtype(dtype).with_device(like.device());
}
// What the fused kernels accumulate 16-bit inputs in (f32), and wider dtypes in themselves:
// the dtype of their softmax statistics (attention's log-sum-exp) and gradient partials.
inline DType accumulate_dtype(DType dtype) {
  return dtype == DType::f16 || dtype == DType::bf16 ? DType::f32 : dtype;
}
inline TensorOptions output_options(const Tensor& like) {
  return output_options(like, like.dtype());
}

// The number of elements normalised together (layer_norm, rms_norm), after checking that
// normalized_shape is non-empty and ends input's dims.
inline int64_t normalized_cols(const char* op, const Tensor& input, const Shape& normalized_shape) {
  size_t count = normalized_shape.size();
  bool matches = count >= 1 && count <= size_t(input.dim()) &&
                 std::equal(normalized_shape.begin(), normalized_shape.end(),
                            input.sizes().end() - int64_t(count));
  if (!matches) {
    throw std::invalid_argument(
        fmt::format("{}: normalized_shape {} must be non-empty and match the last dims of input {}",
                    op, shape_str(normalized_shape), shape_str(input.sizes())));
  }
  return shape_numel(normalized_shape);
}

inline void require_defined(const char* op, const char* name, const Tensor& tensor) {
  if (!tensor.defined()) {
    throw std::invalid_argument(fmt::format("{}: {} is an undefined tensor", op, name));
  }
}

inline void require_floating(const char* op, const char* name, const Tensor& tensor) {
  require_defined(op, name, tensor);
  if (!is_floating(tensor.dtype())) {
    throw std::invalid_argument(fmt::format("{}: {} has dtype {}, expected a floating dtype", op,
                                            name, dtype_name(tensor.dtype())));
  }
}

inline void require_dtype(const char* op, const char* name, const Tensor& tensor, DType dtype) {
  require_defined(op, name, tensor);
  if (tensor.dtype() != dtype) {
    throw std::invalid_argument(fmt::format("{}: {} has dtype {}, expected {}", op, name,
                                            dtype_name(tensor.dtype()), dtype_name(dtype)));
  }
}

// `other` must share `reference`'s dtype and device.
inline void require_like(const char* op, const char* name, const Tensor& other,
                         const char* ref_name, const Tensor& reference) {
  require_dtype(op, name, other, reference.dtype());
  if (other.device() != reference.device()) {
    throw std::invalid_argument(fmt::format("{}: {} is on {} but {} is on {}", op, name,
                                            other.device().str(), ref_name,
                                            reference.device().str()));
  }
}

inline void require_shape(const char* op, const char* name, const Tensor& tensor,
                          const Shape& shape) {
  if (tensor.sizes() != shape) {
    throw std::invalid_argument(fmt::format("{}: {} has shape {}, expected {}", op, name,
                                            shape_str(tensor.sizes()), shape_str(shape)));
  }
}

// Applies a last-dim kernel along `dim` by moving `dim` last and back.
template <typename Kernel>
Tensor along_last_dim(const Tensor& x, int64_t dim, const Kernel& kernel) {
  int64_t rank = std::max<int64_t>(1, x.dim());
  int64_t last = rank - 1;
  int64_t wrapped = wrap_dim(dim, rank, "dim");
  Tensor moved = x.dim() == 0 ? x : transpose(x, wrapped, last);
  Tensor result = kernel(contiguous(moved));
  if (x.dim() == 0 || wrapped == last) return result;
  return contiguous(transpose(result, wrapped, last));
}

}  // namespace zt::ops::nn_op_checks
