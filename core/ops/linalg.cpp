// matmul, mm, bmm and linear on top of Backend::gemm, with PyTorch's shape rules.
// Operands reach gemm without a copy whenever their strides allow it: a matrix whose rows or
// columns are unit-stride is passed as stored (transposed when its columns are), and batch
// dimensions that merge into one stride (including broadcast stride 0) become the gemm batch
// stride. Anything else is made contiguous first. Outputs are new contiguous tensors.
#include "core/ops/linalg.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/view.h"

namespace zt::ops {

namespace {

// How gemm reads one operand: a batch of matrices of `rows` x `cols`, stored row-major with
// leading dimension `leading_dim` (or column-major when `transposed`).
struct GemmOperand {
  Tensor tensor;  // keeps the data alive (the input itself or a contiguous copy)
  bool transposed = false;
  int64_t leading_dim = 1;
  int64_t batch_stride = 0;
};

// One stride that steps through all batch dims (the dims before the last two) in row-major
// order, or nothing if they do not merge. Size-1 dims have no say.
std::optional<int64_t> merged_batch_stride(const Tensor& tensor) {
  const Shape& sizes = tensor.sizes();
  const Shape& strides = tensor.strides();
  std::optional<int64_t> inner_stride;
  int64_t inner_extent = 1;  // elements spanned by the batch dims merged so far, in steps
  for (int64_t d = tensor.dim() - 3; d >= 0; --d) {
    if (sizes[size_t(d)] == 1) continue;
    if (!inner_stride) {
      inner_stride = strides[size_t(d)];
      inner_extent = sizes[size_t(d)];
      continue;
    }
    if (strides[size_t(d)] != *inner_stride * inner_extent) return std::nullopt;
    inner_extent *= sizes[size_t(d)];
  }
  return inner_stride.value_or(0);
}

// The gemm view of the last two dims, or nothing when neither rows nor columns are unit-stride.
std::optional<GemmOperand> operand_layout(const Tensor& tensor) {
  int64_t rows = tensor.size(-2), cols = tensor.size(-1);
  int64_t row_stride = tensor.stride(-2), col_stride = tensor.stride(-1);
  std::optional<int64_t> batch_stride = merged_batch_stride(tensor);
  if (!batch_stride) return std::nullopt;
  if ((cols == 1 || col_stride == 1) && (rows == 1 || row_stride >= std::max<int64_t>(1, cols))) {
    int64_t leading_dim = rows == 1 ? std::max<int64_t>(1, cols) : row_stride;
    return GemmOperand{tensor, false, leading_dim, *batch_stride};
  }
  if ((rows == 1 || row_stride == 1) && (cols == 1 || col_stride >= std::max<int64_t>(1, rows))) {
    int64_t leading_dim = cols == 1 ? std::max<int64_t>(1, rows) : col_stride;
    return GemmOperand{tensor, true, leading_dim, *batch_stride};
  }
  return std::nullopt;
}

GemmOperand prepare_operand(const Tensor& tensor) {
  if (std::optional<GemmOperand> layout = operand_layout(tensor)) return *layout;
  return *operand_layout(contiguous(tensor));
}

void check_pair(const char* op, const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) {
    throw std::invalid_argument(fmt::format("{}: an argument is an undefined tensor", op));
  }
  if (a.dtype() != b.dtype()) {
    throw std::invalid_argument(fmt::format("{}: dtypes differ: {} and {}", op,
                                            dtype_name(a.dtype()), dtype_name(b.dtype())));
  }
  if (!is_floating(a.dtype())) {
    throw std::invalid_argument(
        fmt::format("{}: dtype {} is not a floating type", op, dtype_name(a.dtype())));
  }
  if (a.device() != b.device()) {
    throw std::invalid_argument(
        fmt::format("{}: tensors are on {} and {}", op, a.device().str(), b.device().str()));
  }
}

// out [batch..., m, n] (contiguous) = a [batch..., m, k] @ b [batch..., k, n] + beta * out,
// where a and b already have out's batch dims (possibly broadcast with stride 0).
void batched_gemm(const Tensor& a, const Tensor& b, const Tensor& out, double beta) {
  if (out.numel() == 0) return;
  int64_t m = out.size(-2), n = out.size(-1), k = a.size(-1);
  GemmOperand left = prepare_operand(a), right = prepare_operand(b);
  GemmArgs args;
  args.transpose_a = left.transposed;
  args.transpose_b = right.transposed;
  args.m = m;
  args.n = n;
  args.k = k;
  args.beta = beta;
  args.a = left.tensor.raw_data();
  args.lda = left.leading_dim;
  args.batch_stride_a = left.batch_stride;
  args.b = right.tensor.raw_data();
  args.ldb = right.leading_dim;
  args.batch_stride_b = right.batch_stride;
  args.c = out.raw_data();
  args.ldc = std::max<int64_t>(1, n);
  args.batch_stride_c = m * n;
  args.batch = out.numel() / (m * n);
  args.dtype = out.dtype();
  backend_for(out.device()).gemm(args);
}

Shape broadcast_batch(const char* op, const Tensor& a, const Tensor& b, const Shape& left,
                      const Shape& right) {
  size_t rank = std::max(left.size(), right.size());
  Shape result(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t l = i < rank - left.size() ? 1 : left[i - (rank - left.size())];
    int64_t r = i < rank - right.size() ? 1 : right[i - (rank - right.size())];
    if (l != r && l != 1 && r != 1) {
      throw std::invalid_argument(fmt::format("{}: batch dimensions of {} and {} do not broadcast",
                                              op, shape_str(a.sizes()), shape_str(b.sizes())));
    }
    result[i] = l == 1 ? r : l;
  }
  return result;
}

Tensor new_output(const Shape& shape, const Tensor& like) {
  return empty(shape, TensorOptions{.dtype = like.dtype(), .device = like.device()});
}

// a [..., m, k] @ b [..., k, n] with at least 2 dims each; batch dims broadcast.
Tensor matmul_matrices(const char* op, const Tensor& a, const Tensor& b) {
  int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  if (b.size(-2) != k) {
    throw std::invalid_argument(fmt::format("{}: shapes {} and {} cannot be multiplied ({} != {})",
                                            op, shape_str(a.sizes()), shape_str(b.sizes()), k,
                                            b.size(-2)));
  }
  // A batch of rows times one matrix is one tall product when the rows merge into a view.
  if (b.dim() == 2 && a.dim() > 2) {
    if (std::optional<Shape> strides = view_strides(a, {a.numel() / std::max<int64_t>(1, k), k})) {
      Tensor rows =
          as_strided(a, {a.numel() / std::max<int64_t>(1, k), k}, *strides, a.storage_offset());
      Shape out_shape(a.sizes().begin(), a.sizes().end() - 1);
      out_shape.push_back(n);
      Tensor out = new_output({rows.size(0), n}, a);
      batched_gemm(rows, b, out, 0.0);
      return view(out, out_shape);
    }
  }
  Shape a_batch(a.sizes().begin(), a.sizes().end() - 2);
  Shape b_batch(b.sizes().begin(), b.sizes().end() - 2);
  Shape batch = broadcast_batch(op, a, b, a_batch, b_batch);
  Shape a_shape = batch, b_shape = batch, out_shape = batch;
  a_shape.insert(a_shape.end(), {m, k});
  b_shape.insert(b_shape.end(), {k, n});
  out_shape.insert(out_shape.end(), {m, n});
  Tensor out = new_output(out_shape, a);
  batched_gemm(expand(a, a_shape), expand(b, b_shape), out, 0.0);
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_pair("matmul", a, b);
  if (a.dim() == 0 || b.dim() == 0) {
    throw std::invalid_argument(
        fmt::format("matmul: both arguments need at least 1 dimension, got {} and {}",
                    shape_str(a.sizes()), shape_str(b.sizes())));
  }
  if (a.dim() == 1 && b.dim() == 1 && a.size(0) != b.size(0)) {
    throw std::invalid_argument(fmt::format("matmul: vectors {} and {} differ in length",
                                            shape_str(a.sizes()), shape_str(b.sizes())));
  }
  Tensor left = a.dim() == 1 ? unsqueeze(a, 0) : a;
  Tensor right = b.dim() == 1 ? unsqueeze(b, 1) : b;
  Tensor product = matmul_matrices("matmul", left, right);
  if (b.dim() == 1) product = squeeze(product, -1);
  if (a.dim() == 1) product = squeeze(product, b.dim() == 1 ? -1 : -2);
  return product;
}

Tensor mm(const Tensor& a, const Tensor& b) {
  check_pair("mm", a, b);
  if (a.dim() != 2 || b.dim() != 2) {
    throw std::invalid_argument(fmt::format("mm: expected two 2-d tensors, got {} and {}",
                                            shape_str(a.sizes()), shape_str(b.sizes())));
  }
  return matmul_matrices("mm", a, b);
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_pair("bmm", a, b);
  if (a.dim() != 3 || b.dim() != 3 || a.size(0) != b.size(0)) {
    throw std::invalid_argument(
        fmt::format("bmm: expected two 3-d tensors with the same batch size, got {} and {}",
                    shape_str(a.sizes()), shape_str(b.sizes())));
  }
  return matmul_matrices("bmm", a, b);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_pair("linear", x, weight);
  if (weight.dim() != 2 || x.dim() < 1 || x.size(-1) != weight.size(1)) {
    throw std::invalid_argument(fmt::format(
        "linear: input {} needs a last dim equal to weight {}'s second dim (weight is [out, in])",
        shape_str(x.sizes()), shape_str(weight.sizes())));
  }
  int64_t in_features = weight.size(1), out_features = weight.size(0);
  if (bias.defined()) {
    check_pair("linear", x, bias);
    if (bias.dim() != 1 || bias.size(0) != out_features) {
      throw std::invalid_argument(fmt::format("linear: bias {} should be [{}] for weight {}",
                                              shape_str(bias.sizes()), out_features,
                                              shape_str(weight.sizes())));
    }
  }
  int64_t rows = x.numel() / std::max<int64_t>(1, in_features);
  if (in_features == 0) rows = shape_numel(Shape(x.sizes().begin(), x.sizes().end() - 1));
  Tensor flat = reshape(x, {rows, in_features});
  Tensor out = new_output({rows, out_features}, x);
  if (bias.defined() && out.numel() > 0) copy_(out, bias);
  batched_gemm(flat, transpose(weight, 0, 1), out, bias.defined() ? 1.0 : 0.0);
  Shape out_shape(x.sizes().begin(), x.sizes().end() - 1);
  out_shape.push_back(out_features);
  return view(out, out_shape);
}

}  // namespace zt::ops
