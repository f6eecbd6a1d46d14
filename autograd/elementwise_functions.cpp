// Differentiable elementwise ops. A binary op's input gradients are computed at the broadcast
// output shape and summed back to each input's shape (ops::sum_to_shape); an input that does
// not require grad gets no gradient computed. Saved tensors are detached aliases, so a node
// never keeps its own output's metadata alive.
#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/factory.h"
#include "core/ops/view.h"

namespace zt {

using autograd::record;
using Grads = std::vector<Tensor>;

namespace {

// A mask (0/1 of `like`'s dtype) from a u8 comparison result.
Tensor as_mask(const Tensor& comparison, const Tensor& like) {
  return ops::to_dtype(comparison, like.dtype());
}

// Gradient for a binary op's input of shape `input_shape`: the output-shaped product
// (grad * partial derivative) summed to that shape, or none when the input needs no gradient.
Tensor reduce_to(bool needed, const Shape& input_shape, const std::function<Tensor()>& product) {
  return needed ? ops::sum_to_shape(product(), input_shape) : Tensor();
}

struct BinarySaved {
  Tensor a, b;
  Shape a_shape, b_shape;
  bool a_needs_grad, b_needs_grad;
};

BinarySaved save_binary(const Tensor& a, const Tensor& b) {
  return {a.detach(), b.detach(), a.sizes(), b.sizes(), a.requires_grad(), b.requires_grad()};
}

Tensor record_unary(const char* name, const Tensor& x, Tensor out,
                    std::function<Tensor(const Tensor&)> input_grad) {
  return record(
      name, {x}, std::move(out),
      [input_grad = std::move(input_grad)](const Tensor& grad) { return Grads{input_grad(grad)}; });
}

}  // namespace

// ---- tensor-tensor -----------------------------------------------------------------------

Tensor add(const Tensor& a, const Tensor& b) {
  return record("AddBackward", {a, b}, ops::add(a, b), [s = save_binary(a, b)](const Tensor& g) {
    return Grads{reduce_to(s.a_needs_grad, s.a_shape, [&] { return g; }),
                 reduce_to(s.b_needs_grad, s.b_shape, [&] { return g; })};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  return record("SubBackward", {a, b}, ops::sub(a, b), [s = save_binary(a, b)](const Tensor& g) {
    return Grads{reduce_to(s.a_needs_grad, s.a_shape, [&] { return g; }),
                 reduce_to(s.b_needs_grad, s.b_shape, [&] { return ops::neg(g); })};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  return record("MulBackward", {a, b}, ops::mul(a, b), [s = save_binary(a, b)](const Tensor& g) {
    return Grads{reduce_to(s.a_needs_grad, s.a_shape, [&] { return ops::mul(g, s.b); }),
                 reduce_to(s.b_needs_grad, s.b_shape, [&] { return ops::mul(g, s.a); })};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  return record("DivBackward", {a, b}, ops::div(a, b), [s = save_binary(a, b)](const Tensor& g) {
    // d(a/b)/db = -a / b^2
    return Grads{reduce_to(s.a_needs_grad, s.a_shape, [&] { return ops::div(g, s.b); }),
                 reduce_to(s.b_needs_grad, s.b_shape, [&] {
                   return ops::neg(ops::div(ops::mul(g, s.a), ops::mul(s.b, s.b)));
                 })};
  });
}

Tensor pow(const Tensor& base, const Tensor& exponent) {
  Tensor out = ops::pow(base, exponent);
  return record("PowBackward", {base, exponent}, out,
                [s = save_binary(base, exponent), out = out.detach()](const Tensor& g) {
                  // d(a^b)/da = b * a^(b-1); d(a^b)/db = a^b * log(a)
                  return Grads{reduce_to(s.a_needs_grad, s.a_shape,
                                         [&] {
                                           Tensor power = ops::pow(s.a, ops::sub(s.b, 1.0));
                                           return ops::mul(g, ops::mul(s.b, power));
                                         }),
                               reduce_to(s.b_needs_grad, s.b_shape, [&] {
                                 return ops::mul(g, ops::mul(out, ops::log(s.a)));
                               })};
                });
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  return record("MaximumBackward", {a, b}, ops::maximum(a, b),
                [s = save_binary(a, b)](const Tensor& g) {
                  Tensor tie_half = ops::mul(as_mask(ops::eq(s.a, s.b), g), 0.5);
                  return Grads{reduce_to(s.a_needs_grad, s.a_shape,
                                         [&] {
                                           Tensor wins = as_mask(ops::gt(s.a, s.b), g);
                                           return ops::mul(g, ops::add(wins, tie_half));
                                         }),
                               reduce_to(s.b_needs_grad, s.b_shape, [&] {
                                 Tensor wins = as_mask(ops::lt(s.a, s.b), g);
                                 return ops::mul(g, ops::add(wins, tie_half));
                               })};
                });
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  return record("MinimumBackward", {a, b}, ops::minimum(a, b),
                [s = save_binary(a, b)](const Tensor& g) {
                  Tensor tie_half = ops::mul(as_mask(ops::eq(s.a, s.b), g), 0.5);
                  return Grads{reduce_to(s.a_needs_grad, s.a_shape,
                                         [&] {
                                           Tensor wins = as_mask(ops::lt(s.a, s.b), g);
                                           return ops::mul(g, ops::add(wins, tie_half));
                                         }),
                               reduce_to(s.b_needs_grad, s.b_shape, [&] {
                                 Tensor wins = as_mask(ops::gt(s.a, s.b), g);
                                 return ops::mul(g, ops::add(wins, tie_half));
                               })};
                });
}

// ---- tensor-scalar -----------------------------------------------------------------------

Tensor add(const Tensor& a, double b) {
  return record_unary("AddBackward", a, ops::add(a, b), [](const Tensor& g) { return g; });
}

Tensor sub(const Tensor& a, double b) {
  return record_unary("SubBackward", a, ops::sub(a, b), [](const Tensor& g) { return g; });
}

Tensor mul(const Tensor& a, double b) {
  return record_unary("MulBackward", a, ops::mul(a, b),
                      [b](const Tensor& g) { return ops::mul(g, b); });
}

Tensor div(const Tensor& a, double b) {
  return record_unary("DivBackward", a, ops::div(a, b),
                      [b](const Tensor& g) { return ops::div(g, b); });
}

Tensor pow(const Tensor& base, double exponent) {
  return record_unary("PowBackward", base, ops::pow(base, exponent),
                      [base = base.detach(), exponent](const Tensor& g) {
                        if (exponent == 0.0) return ops::mul(g, 0.0);
                        return ops::mul(g, ops::mul(ops::pow(base, exponent - 1.0), exponent));
                      });
}

// ---- unary -------------------------------------------------------------------------------

Tensor neg(const Tensor& x) {
  return record_unary("NegBackward", x, ops::neg(x), [](const Tensor& g) { return ops::neg(g); });
}

Tensor exp(const Tensor& x) {
  Tensor out = ops::exp(x);
  return record_unary("ExpBackward", x, out,
                      [out = out.detach()](const Tensor& g) { return ops::mul(g, out); });
}

Tensor log(const Tensor& x) {
  return record_unary("LogBackward", x, ops::log(x),
                      [x = x.detach()](const Tensor& g) { return ops::div(g, x); });
}

Tensor sqrt(const Tensor& x) {
  Tensor out = ops::sqrt(x);
  return record_unary("SqrtBackward", x, out, [out = out.detach()](const Tensor& g) {
    return ops::div(ops::mul(g, 0.5), out);  // d sqrt(x) = 1 / (2 sqrt(x))
  });
}

Tensor rsqrt(const Tensor& x) {
  Tensor out = ops::rsqrt(x);
  return record_unary("RsqrtBackward", x, out, [out = out.detach()](const Tensor& g) {
    // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 out^3
    return ops::mul(ops::mul(g, ops::mul(out, ops::mul(out, out))), -0.5);
  });
}

Tensor abs(const Tensor& x) {
  return record_unary("AbsBackward", x, ops::abs(x),
                      [x = x.detach()](const Tensor& g) { return ops::mul(g, ops::sign(x)); });
}

// The activations of core/unary_ops.h: the forward kernel, and a node that saves the input or
// the output (as the op's struct says) for the fused backward kernel.
namespace {
template <typename Struct>
Tensor activation(UnaryOp op, BinaryOp backward_op, const char* node_name, const Tensor& x) {
  Tensor out = ops::unary(op, x);
  Tensor saved = Struct::kBackwardSavesOutput ? out.detach() : x.detach();
  return record_unary(node_name, x, std::move(out),
                      [saved = std::move(saved), backward_op](const Tensor& g) {
                        return ops::binary(backward_op, g, saved);
                      });
}
}  // namespace

#define ZT_DEFINE_ACTIVATION(name, Struct)                                          \
  Tensor name(const Tensor& x) {                                                    \
    return activation<unary_math::Struct>(UnaryOp::name, BinaryOp::name##_backward, \
                                          #Struct "Backward", x);                   \
  }
ZT_UNARY_OPS(ZT_UNARY_SKIP, ZT_DEFINE_ACTIVATION)
#undef ZT_DEFINE_ACTIVATION

Tensor gelu(const Tensor& x, bool tanh_approximation) {
  return tanh_approximation ? gelu_tanh(x) : gelu(x);
}

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  return record(
      "WhereBackward", {a, b}, ops::where(condition, a, b),
      [condition = condition.detach(), s = save_binary(a, b)](const Tensor& g) {
        Tensor zero = ops::scalar_like(0.0, g);
        return Grads{
            reduce_to(s.a_needs_grad, s.a_shape, [&] { return ops::where(condition, g, zero); }),
            reduce_to(s.b_needs_grad, s.b_shape, [&] { return ops::where(condition, zero, g); })};
      });
}

// ---- operators ---------------------------------------------------------------------------

Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
Tensor operator+(const Tensor& a, double b) {
  return add(a, b);
}
Tensor operator-(const Tensor& a, double b) {
  return sub(a, b);
}
Tensor operator*(const Tensor& a, double b) {
  return mul(a, b);
}
Tensor operator/(const Tensor& a, double b) {
  return div(a, b);
}
Tensor operator+(double a, const Tensor& b) {
  return add(b, a);
}
Tensor operator-(double a, const Tensor& b) {
  return add(neg(b), a);
}
Tensor operator*(double a, const Tensor& b) {
  return mul(b, a);
}
Tensor operator/(double a, const Tensor& b) {
  return mul(pow(b, -1.0), a);
}
Tensor operator-(const Tensor& x) {
  return neg(x);
}

}  // namespace zt
