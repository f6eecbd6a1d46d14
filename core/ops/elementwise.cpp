// Elementwise ops without autograd: validation (one device, matching dtypes, broadcastable
// shapes, errors naming the op, shapes and dtypes), NumPy broadcasting through stride-0 views
// from ops::expand, output allocation, and one backend kernel call.
// Outputs are new contiguous tensors tagged with the thread's current_memory_tag(), never the
// inputs' tag: an op's result is whatever the caller is making now (activation, grad, ...).
#include "core/ops/elementwise.h"

#include <fmt/format.h>

#include <stdexcept>

#include "core/factory.h"
#include "core/ops/view.h"

namespace zt::ops {

namespace {

void check_defined(const Tensor& tensor, const char* op, const char* role) {
  if (!tensor.defined()) {
    throw std::invalid_argument(fmt::format("{}: {} is an undefined tensor", op, role));
  }
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  if (a.device() != b.device()) {
    throw std::invalid_argument(fmt::format("{}: tensors on different devices: {} and {}", op,
                                            a.device().str(), b.device().str()));
  }
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype() != b.dtype()) {
    throw std::invalid_argument(fmt::format(
        "{}: dtypes differ: {} {} and {} {} (convert one with to_dtype)", op, dtype_name(a.dtype()),
        shape_str(a.sizes()), dtype_name(b.dtype()), shape_str(b.sizes())));
  }
}

// A view of `tensor` with `shape`: the tensor itself when the shape already matches.
Tensor broadcast_to(const Tensor& tensor, const Shape& shape) {
  return tensor.sizes() == shape ? tensor : expand(tensor, shape);
}

Tensor new_output(const Shape& shape, DType dtype, Device device) {
  return empty(shape, {.dtype = dtype, .device = device});  // tag: current_memory_tag()
}

Shape broadcast_shapes_for(const Shape& a, const Shape& b, const char* op) {
  size_t rank = std::max(a.size(), b.size());
  Shape result(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t size_a = i + a.size() >= rank ? a[i + a.size() - rank] : 1;
    int64_t size_b = i + b.size() >= rank ? b[i + b.size() - rank] : 1;
    if (size_a != size_b && size_a != 1 && size_b != 1) {
      throw std::invalid_argument(fmt::format("{}: shapes {} and {} cannot be broadcast together",
                                              op, shape_str(a), shape_str(b)));
    }
    result[i] = size_a == 1 ? size_b : size_a;
  }
  return result;
}

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  return broadcast_shapes_for(a, b, "broadcast_shapes");
}

Tensor scalar_like(double value, const Tensor& like) {
  return full({}, value, {.dtype = like.dtype(), .device = like.device()});
}

Tensor unary(UnaryOp op, const Tensor& x) {
  const char* name = unary_op_name(op);
  check_defined(x, name, "input");
  if (!is_floating(x.dtype()) && !unary_accepts_integers(op)) {
    throw std::invalid_argument(fmt::format("{}: needs a floating dtype, got {} {}", name,
                                            dtype_name(x.dtype()), shape_str(x.sizes())));
  }
  Tensor out = new_output(x.sizes(), x.dtype(), x.device());
  if (out.numel() > 0) backend_for(x.device()).unary(op, x, out);
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_op_name(op);
  check_defined(a, name, "first input");
  check_defined(b, name, "second input");
  check_same_device(a, b, name);
  check_same_dtype(a, b, name);
  if (!is_floating(a.dtype()) && !binary_accepts_integers(op)) {
    throw std::invalid_argument(fmt::format("{}: needs a floating dtype, got {} {} and {}", name,
                                            dtype_name(a.dtype()), shape_str(a.sizes()),
                                            shape_str(b.sizes())));
  }
  Shape shape = broadcast_shapes_for(a.sizes(), b.sizes(), name);
  Tensor out = new_output(shape, is_comparison(op) ? DType::u8 : a.dtype(), a.device());
  if (out.numel() > 0) {
    backend_for(a.device()).binary(op, broadcast_to(a, shape), broadcast_to(b, shape), out);
  }
  return out;
}

#define ZT_DEFINE_UNARY_OP(name, Struct) \
  Tensor name(const Tensor& x) {         \
    return unary(UnaryOp::name, x);      \
  }
ZT_UNARY_OPS(ZT_DEFINE_UNARY_OP, ZT_DEFINE_UNARY_OP)
#undef ZT_DEFINE_UNARY_OP

Tensor gelu(const Tensor& x, bool tanh_approximation) {
  return unary(tanh_approximation ? UnaryOp::gelu_tanh : UnaryOp::gelu, x);
}

Tensor add(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::add, a, b);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::sub, a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::mul, a, b);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::div, a, b);
}
Tensor pow(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::pow, a, b);
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::maximum, a, b);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::minimum, a, b);
}
Tensor add(const Tensor& a, double b) {
  return binary(BinaryOp::add, a, scalar_like(b, a));
}
Tensor sub(const Tensor& a, double b) {
  return binary(BinaryOp::sub, a, scalar_like(b, a));
}
Tensor mul(const Tensor& a, double b) {
  return binary(BinaryOp::mul, a, scalar_like(b, a));
}
Tensor div(const Tensor& a, double b) {
  return binary(BinaryOp::div, a, scalar_like(b, a));
}
Tensor pow(const Tensor& a, double exponent) {
  return binary(BinaryOp::pow, a, scalar_like(exponent, a));
}

Tensor eq(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::eq, a, b);
}
Tensor ne(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::ne, a, b);
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::lt, a, b);
}
Tensor le(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::le, a, b);
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::gt, a, b);
}
Tensor ge(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::ge, a, b);
}
Tensor gt(const Tensor& a, double b) {
  return binary(BinaryOp::gt, a, scalar_like(b, a));
}
Tensor lt(const Tensor& a, double b) {
  return binary(BinaryOp::lt, a, scalar_like(b, a));
}

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  check_defined(condition, "where", "condition");
  check_defined(a, "where", "first input");
  check_defined(b, "where", "second input");
  if (condition.dtype() != DType::u8) {
    throw std::invalid_argument(fmt::format("where: condition must be u8, got {} {}",
                                            dtype_name(condition.dtype()),
                                            shape_str(condition.sizes())));
  }
  check_same_device(condition, a, "where");
  check_same_device(a, b, "where");
  check_same_dtype(a, b, "where");
  Shape shape = broadcast_shapes_for(broadcast_shapes_for(condition.sizes(), a.sizes(), "where"),
                                     b.sizes(), "where");
  Tensor out = new_output(shape, a.dtype(), a.device());
  if (out.numel() > 0) {
    backend_for(a.device())
        .where(broadcast_to(condition, shape), broadcast_to(a, shape), broadcast_to(b, shape), out);
  }
  return out;
}

void add_(const Tensor& dst, const Tensor& src) {
  check_defined(dst, "add_", "destination");
  check_defined(src, "add_", "source");
  check_same_device(dst, src, "add_");
  check_same_dtype(dst, src, "add_");
  if (broadcast_shapes_for(dst.sizes(), src.sizes(), "add_") != dst.sizes()) {
    throw std::invalid_argument(fmt::format("add_: source {} does not broadcast to destination {}",
                                            shape_str(src.sizes()), shape_str(dst.sizes())));
  }
  if (dst.numel() == 0) return;
  // Each output element reads only its own dst element, so dst may be both input and output.
  backend_for(dst.device()).binary(BinaryOp::add, dst, broadcast_to(src, dst.sizes()), dst);
}

void mul_(const Tensor& dst, double value) {
  check_defined(dst, "mul_", "destination");
  if (dst.numel() == 0) return;
  Tensor factor = expand(scalar_like(value, dst), dst.sizes());
  backend_for(dst.device()).binary(BinaryOp::mul, dst, factor, dst);
}

}  // namespace zt::ops
