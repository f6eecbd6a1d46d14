// Reductions without autograd over any set of dims: the kept dims are permuted to the front
// and the reduced dims to the back, made contiguous (a no-op when they already are), and the
// backend reduces each row [kept index, reduced elements]. Outputs take the thread's
// current_memory_tag(). Sums of integer dtypes are i64; argmax/argmin are i64.
#include "core/ops/reduce.h"

#include <fmt/format.h>

#include <stdexcept>
#include <vector>

#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace zt::ops {

namespace {

const char* reduce_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return "sum";
    case ReduceOp::mean:
      return "mean";
    case ReduceOp::max:
      return "amax";
    case ReduceOp::min:
      return "amin";
    case ReduceOp::argmax:
      return "argmax";
    case ReduceOp::argmin:
      return "argmin";
    case ReduceOp::var:
      return "var";
  }
  return "reduce";
}

DType output_dtype(ReduceOp op, DType input, const char* name, const Shape& shape) {
  if (op == ReduceOp::argmax || op == ReduceOp::argmin) return DType::i64;
  if (is_floating(input)) return input;
  if (op == ReduceOp::mean || op == ReduceOp::var) {
    throw std::invalid_argument(fmt::format("{}: needs a floating dtype, got {} {}", name,
                                            dtype_name(input), shape_str(shape)));
  }
  return op == ReduceOp::sum ? DType::i64 : input;
}

// The sum over the rows of a contiguous f32/f64 [rows, cols] matrix with rows >= 2, as [cols]:
// halves added elementwise until one row is left. A bias gradient or a broadcast's backward
// sums over the leading dims; reducing them as rows would first copy the matrix transposed,
// the slowest part of a linear layer's backward after its products. Pairwise, the rounding
// error grows as log2(rows) rather than rows.
Tensor sum_leading_rows(const Tensor& matrix) {
  Tensor rows = matrix;
  while (rows.size(0) > 1) {
    const int64_t count = rows.size(0), half = count / 2;
    Tensor summed = add(narrow(rows, 0, 0, half), narrow(rows, 0, half, half));
    if (count % 2 == 1) add_(narrow(summed, 0, 0, 1), narrow(rows, 0, count - 1, 1));
    rows = summed;
  }
  return reshape(rows, {matrix.size(1)});
}

// Whether x's reduced dims are its leading ones (at least two elements kept and reduced) in an
// f32/f64 CPU tensor: the case sum_leading_rows serves. The choice never depends on the
// layout, so that a view and its contiguous copy sum to the same bits.
bool reduces_leading_rows(const Tensor& x, const std::vector<bool>& reduced,
                          int64_t reduced_numel) {
  if (!x.device().is_cpu()) return false;
  if (x.dtype() != DType::f32 && x.dtype() != DType::f64) return false;
  int64_t leading = 0;
  while (leading < x.dim() && reduced[size_t(leading)]) ++leading;
  for (int64_t d = leading; d < x.dim(); ++d) {
    if (reduced[size_t(d)]) return false;
  }
  return leading > 0 && leading < x.dim() && reduced_numel >= 2 && x.numel() / reduced_numel >= 2;
}

}  // namespace

Tensor reduce(ReduceOp op, const Tensor& x, const Shape& dims, bool keepdim, int64_t correction) {
  const char* name = reduce_name(op);
  if (!x.defined()) throw std::invalid_argument(fmt::format("{}: input is undefined", name));
  const int64_t rank = x.dim();
  std::vector<bool> reduced(size_t(rank), dims.empty());
  for (int64_t dim : dims) {
    int64_t wrapped = wrap_dim(dim, rank == 0 ? 1 : rank, name);
    if (rank == 0) continue;  // a 0-d tensor accepts dim 0 or -1, like PyTorch
    if (reduced[size_t(wrapped)]) {
      throw std::invalid_argument(fmt::format("{}: dim {} appears twice in {} for shape {}", name,
                                              dim, shape_str(dims), shape_str(x.sizes())));
    }
    reduced[size_t(wrapped)] = true;
  }
  DType dtype = output_dtype(op, x.dtype(), name, x.sizes());

  Shape permutation;
  Shape out_shape;
  int64_t reduced_numel = 1;
  for (int64_t d = 0; d < rank; ++d) {
    if (reduced[size_t(d)]) continue;
    permutation.push_back(d);
    out_shape.push_back(x.size(d));
  }
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[size_t(d)]) continue;
    permutation.push_back(d);
    reduced_numel *= x.size(d);
  }
  bool needs_elements = op == ReduceOp::max || op == ReduceOp::min || op == ReduceOp::argmax ||
                        op == ReduceOp::argmin;
  if (needs_elements && reduced_numel == 0) {
    throw std::invalid_argument(fmt::format("{}: cannot reduce zero elements of shape {} over {}",
                                            name, shape_str(x.sizes()), shape_str(dims)));
  }
  if (keepdim) {
    out_shape.clear();
    for (int64_t d = 0; d < rank; ++d) out_shape.push_back(reduced[size_t(d)] ? 1 : x.size(d));
  }
  if (op == ReduceOp::sum && reduces_leading_rows(x, reduced, reduced_numel)) {
    return reshape(
        sum_leading_rows(reshape(contiguous(x), {reduced_numel, x.numel() / reduced_numel})),
        out_shape);
  }
  Tensor out = empty(out_shape, {.dtype = dtype, .device = x.device()});
  if (out.numel() == 0) return out;
  Tensor rows = contiguous(permute(x, permutation));
  backend_for(x.device()).reduce(op, rows, out, correction);
  return out;
}

Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) {
  return reduce(ReduceOp::sum, x, dims, keepdim);
}
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) {
  return reduce(ReduceOp::mean, x, dims, keepdim);
}
Tensor amax(const Tensor& x, const Shape& dims, bool keepdim) {
  return reduce(ReduceOp::max, x, dims, keepdim);
}
Tensor amin(const Tensor& x, const Shape& dims, bool keepdim) {
  return reduce(ReduceOp::min, x, dims, keepdim);
}
Tensor var(const Tensor& x, const Shape& dims, int64_t correction, bool keepdim) {
  return reduce(ReduceOp::var, x, dims, keepdim, correction);
}
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  return reduce(ReduceOp::argmax, x, {dim}, keepdim);
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  return reduce(ReduceOp::argmin, x, {dim}, keepdim);
}
Tensor argmax(const Tensor& x) {
  return argmax(reshape(x, {x.numel()}), 0);
}
Tensor argmin(const Tensor& x) {
  return argmin(reshape(x, {x.numel()}), 0);
}

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  const Shape& sizes = x.sizes();
  int64_t leading = x.dim() - int64_t(shape.size());
  bool broadcastable = leading >= 0;
  Shape dims;
  for (int64_t d = 0; d < x.dim() && broadcastable; ++d) {
    if (d < leading) {
      dims.push_back(d);
      continue;
    }
    int64_t target = shape[size_t(d - leading)];
    if (target == sizes[size_t(d)]) continue;
    if (target == 1) {
      dims.push_back(d);
    } else {
      broadcastable = false;
    }
  }
  if (!broadcastable) {
    throw std::invalid_argument(fmt::format("sum_to_shape: shape {} does not broadcast to {}",
                                            shape_str(shape), shape_str(sizes)));
  }
  if (dims.empty()) return x;
  return view(sum(x, dims, /*keepdim=*/true), shape);
}

std::vector<double> sum_of_squares(const std::vector<Tensor>& tensors) {
  std::vector<double> sums(tensors.size(), 0.0);
  if (tensors.empty()) return sums;
  std::vector<Tensor> contiguous_tensors;
  contiguous_tensors.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& tensor = tensors[i];
    if (!tensor.defined() || !is_floating(tensor.dtype()) ||
        tensor.device() != tensors[0].device()) {
      throw std::invalid_argument(fmt::format(
          "sum_of_squares: tensors[{}]: expected a floating tensor (f32, f64, f16, bf16) on {}, "
          "got {}",
          i, tensors[0].defined() ? tensors[0].device().str() : "the device of tensors[0]",
          tensor.defined() ? fmt::format("{} {} on {}", dtype_name(tensor.dtype()),
                                         shape_str(tensor.sizes()), tensor.device().str())
                           : "undefined"));
    }
    contiguous_tensors.push_back(contiguous(tensor));
  }
  backend_for(tensors[0].device()).sum_of_squares(contiguous_tensors, sums);
  return sums;
}

}  // namespace zt::ops
