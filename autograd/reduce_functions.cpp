// Differentiable reductions. Backward first restores the reduced dims as size 1 (the keepdim
// shape) and then broadcasts the output gradient over them; empty dims means all dims.
#include <algorithm>

#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/ops/view.h"

namespace zt {

using autograd::record;
using Grads = std::vector<Tensor>;

namespace {

// `input_shape` with every reduced dim set to 1.
Shape keepdim_shape(const Shape& input_shape, const Shape& dims) {
  Shape shape = input_shape;
  if (dims.empty()) {
    std::fill(shape.begin(), shape.end(), 1);
    return shape;
  }
  for (int64_t dim : dims) shape[size_t(wrap_dim(dim, int64_t(shape.size()), "reduce"))] = 1;
  return shape;
}

// The output gradient broadcast back over the reduced dims (a stride-0 view, no copy).
Tensor broadcast_back(const Tensor& grad, const Shape& input_shape, const Shape& kept_shape) {
  return ops::expand(ops::reshape(grad, kept_shape), input_shape);
}

// Gradient of amax/amin: the output gradient shared evenly among the elements that attain the
// extreme.
Grads extreme_backward(const Tensor& grad, const Tensor& x, const Tensor& extreme_kept,
                       const Shape& dims) {
  Shape kept_shape = extreme_kept.sizes();
  Tensor attains = ops::to_dtype(ops::eq(x, extreme_kept), x.dtype());
  Tensor share = ops::div(ops::reshape(grad, kept_shape), ops::sum(attains, dims, true));
  return {ops::mul(attains, share)};
}

}  // namespace

Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) {
  return record("SumBackward", {x}, ops::sum(x, dims, keepdim),
                [input_shape = x.sizes(), kept = keepdim_shape(x.sizes(), dims)](const Tensor& g) {
                  return Grads{broadcast_back(g, input_shape, kept)};
                });
}

Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) {
  Tensor out = ops::mean(x, dims, keepdim);
  double count = out.numel() == 0 ? 1.0 : double(x.numel()) / double(out.numel());
  return record(
      "MeanBackward", {x}, out,
      [input_shape = x.sizes(), kept = keepdim_shape(x.sizes(), dims), count](const Tensor& g) {
        return Grads{broadcast_back(ops::div(g, count), input_shape, kept)};
      });
}

Tensor amax(const Tensor& x, const Shape& dims, bool keepdim) {
  Tensor out = ops::amax(x, dims, keepdim);
  if (!autograd::any_requires_grad({x})) return out;
  Tensor out_kept = ops::reshape(out, keepdim_shape(x.sizes(), dims));
  return record("AmaxBackward", {x}, out,
                [x = x.detach(), out_kept = out_kept.detach(), dims](const Tensor& g) {
                  return extreme_backward(g, x, out_kept, dims);
                });
}

Tensor amin(const Tensor& x, const Shape& dims, bool keepdim) {
  Tensor out = ops::amin(x, dims, keepdim);
  if (!autograd::any_requires_grad({x})) return out;
  Tensor out_kept = ops::reshape(out, keepdim_shape(x.sizes(), dims));
  return record("AminBackward", {x}, out,
                [x = x.detach(), out_kept = out_kept.detach(), dims](const Tensor& g) {
                  return extreme_backward(g, x, out_kept, dims);
                });
}

Tensor var(const Tensor& x, const Shape& dims, int64_t correction, bool keepdim) {
  Tensor out = ops::var(x, dims, correction, keepdim);
  int64_t count = out.numel() == 0 ? 0 : x.numel() / out.numel();
  return record("VarBackward", {x}, out,
                [x = x.detach(), dims, kept = keepdim_shape(x.sizes(), dims),
                 divisor = double(count - correction)](const Tensor& g) {
                  // d var / dx_i = 2 (x_i - mean) / (n - correction)
                  Tensor centered = ops::sub(x, ops::mean(x, dims, true));
                  Tensor scale = ops::div(ops::reshape(g, kept), divisor / 2.0);
                  return Grads{ops::mul(centered, scale)};
                });
}

}  // namespace zt
