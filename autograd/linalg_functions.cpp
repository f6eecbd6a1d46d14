// Differentiable matrix products. For C = A @ B: dA = dC @ B^T and dB = A^T @ dC; broadcast
// batch dims are summed back to each input's shape, and 1-d operands are treated as a row
// (left) or column (right) matrix, as NumPy does.

#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/ops/linalg.h"
#include "core/ops/view.h"

namespace zt {

using autograd::record;
using Grads = std::vector<Tensor>;

namespace {

Tensor transpose_last_two(const Tensor& x) {
  return ops::transpose(x, x.dim() - 2, x.dim() - 1);
}

// matmul's output shape with any dropped 1-d dims restored: batch + [m, n].
Shape matrix_output_shape(const Tensor& a_matrix, const Tensor& b_matrix) {
  Shape a_batch(a_matrix.sizes().begin(), a_matrix.sizes().end() - 2);
  Shape b_batch(b_matrix.sizes().begin(), b_matrix.sizes().end() - 2);
  Shape shape = ops::broadcast_shapes(a_batch, b_batch);
  shape.push_back(a_matrix.size(-2));
  shape.push_back(b_matrix.size(-1));
  return shape;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  Tensor out = ops::matmul(a, b);
  if (!autograd::any_requires_grad({a, b})) return out;
  bool a_needs_grad = a.requires_grad(), b_needs_grad = b.requires_grad();
  if (a.dim() == 1 && b.dim() == 1) {  // dot product: a 0-d output
    return record("DotBackward", {a, b}, out,
                  [a = a.detach(), b = b.detach(), a_needs_grad, b_needs_grad](const Tensor& g) {
                    return Grads{a_needs_grad ? ops::mul(g, b) : Tensor(),
                                 b_needs_grad ? ops::mul(g, a) : Tensor()};
                  });
  }
  Tensor a_matrix = a.dim() == 1 ? ops::unsqueeze(a.detach(), 0) : a.detach();
  Tensor b_matrix = b.dim() == 1 ? ops::unsqueeze(b.detach(), 1) : b.detach();
  return record("MatmulBackward", {a, b}, out,
                [a_matrix, b_matrix, a_shape = a.sizes(), b_shape = b.sizes(),
                 out_matrix_shape = matrix_output_shape(a_matrix, b_matrix), a_needs_grad,
                 b_needs_grad](const Tensor& g) {
                  Tensor g_matrix = ops::reshape(g, out_matrix_shape);
                  Tensor ga, gb;
                  if (a_needs_grad) {
                    Tensor full = ops::matmul(g_matrix, transpose_last_two(b_matrix));
                    ga = ops::reshape(ops::sum_to_shape(full, a_matrix.sizes()), a_shape);
                  }
                  if (b_needs_grad) {
                    Tensor full = ops::matmul(transpose_last_two(a_matrix), g_matrix);
                    gb = ops::reshape(ops::sum_to_shape(full, b_matrix.sizes()), b_shape);
                  }
                  return Grads{ga, gb};
                });
}

Tensor mm(const Tensor& a, const Tensor& b) {
  return record("MmBackward", {a, b}, ops::mm(a, b),
                [a = a.detach(), b = b.detach(), a_needs_grad = a.requires_grad(),
                 b_needs_grad = b.requires_grad()](const Tensor& g) {
                  return Grads{a_needs_grad ? ops::mm(g, ops::transpose(b, 0, 1)) : Tensor(),
                               b_needs_grad ? ops::mm(ops::transpose(a, 0, 1), g) : Tensor()};
                });
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  return record("BmmBackward", {a, b}, ops::bmm(a, b),
                [a = a.detach(), b = b.detach(), a_needs_grad = a.requires_grad(),
                 b_needs_grad = b.requires_grad()](const Tensor& g) {
                  return Grads{a_needs_grad ? ops::bmm(g, ops::transpose(b, 1, 2)) : Tensor(),
                               b_needs_grad ? ops::bmm(ops::transpose(a, 1, 2), g) : Tensor()};
                });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return record(
      "LinearBackward", {x, weight, bias}, ops::linear(x, weight, bias),
      [x = x.detach(), weight = weight.detach(), x_needs_grad = x.requires_grad(),
       weight_needs_grad = weight.requires_grad(),
       bias_needs_grad = bias.defined() && bias.requires_grad()](const Tensor& g) {
        Tensor gx, gw, gb;
        // Rows of the flattened batch: g_rows [rows, out], x_rows [rows, in].
        Tensor g_rows = ops::reshape(g, {-1, weight.size(0)});
        if (x_needs_grad) gx = ops::reshape(ops::mm(g_rows, weight), x.sizes());
        if (weight_needs_grad) {
          gw = ops::mm(ops::transpose(g_rows, 0, 1), ops::reshape(x, {-1, weight.size(1)}));
        }
        if (bias_needs_grad) gb = ops::sum(g_rows, {0});
        return Grads{gx, gw, gb};
      });
}

}  // namespace zt
