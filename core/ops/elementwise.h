// Elementwise ops without autograd, with NumPy broadcasting.
// Binary arithmetic needs both inputs of one dtype (no implicit promotion: an error names
// both dtypes); scalar overloads take the tensor's dtype. Comparisons return u8 (0 or 1).
#pragma once

#include "core/backend.h"
#include "core/tensor.h"

namespace zt::ops {

// NumPy broadcasting of two shapes; throws std::invalid_argument naming both otherwise.
Shape broadcast_shapes(const Shape& a, const Shape& b);
// A 0-d tensor holding `value` with `like`'s dtype and device.
Tensor scalar_like(double value, const Tensor& like);

Tensor unary(UnaryOp op, const Tensor& x);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);

// One op per line of core/unary_ops.h: neg, exp, log, sqrt, rsqrt, abs, tanh, sigmoid, relu,
// gelu, gelu_tanh, sign, square, reciprocal, ...
#define ZT_DECLARE_UNARY_OP(name, Struct) Tensor name(const Tensor& x);
ZT_UNARY_OPS(ZT_DECLARE_UNARY_OP, ZT_DECLARE_UNARY_OP)
#undef ZT_DECLARE_UNARY_OP
// gelu (exact) or gelu_tanh.
Tensor gelu(const Tensor& x, bool tanh_approximation);

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor pow(const Tensor& a, double exponent);

Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);

// condition (u8) broadcast with a and b; a and b share a dtype.
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);

// In place: dst += src (src broadcast to dst), dst *= value. Used for gradient accumulation
// and optimizer-free updates.
void add_(const Tensor& dst, const Tensor& src);
void mul_(const Tensor& dst, double value);

}  // namespace zt::ops
