// The autograd surface of Tensor (requires_grad, grad, backward, hooks, detach) and its
// differentiable views and conversions. Each view calls the matching zt::ops function and, when
// the input requires grad and grad mode is on, records a node whose backward maps the output
// gradient back onto the input's shape. An op that returns its input unchanged records nothing.
#include <fmt/format.h>

#include <stdexcept>

#include "autograd/autograd_meta.h"
#include "autograd/engine.h"
#include "autograd/node.h"
#include "core/factory.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"

namespace zt {

using autograd::AutogradMeta;
using autograd::meta_of;

// ---- autograd --------------------------------------------------------------------------

bool Tensor::requires_grad() const {
  const AutogradMeta* meta = meta_of(*this);
  return meta && (meta->requires_grad || meta->grad_fn);
}

const Tensor& Tensor::set_requires_grad(bool requires_grad) const {
  if (!defined()) throw std::logic_error("set_requires_grad: undefined Tensor");
  if (!is_leaf()) {
    throw std::invalid_argument(fmt::format(
        "set_requires_grad: only leaf tensors can change requires_grad; this one was made by "
        "{} (use detach() for a leaf copy of it)",
        grad_fn()->name()));
  }
  if (requires_grad && !is_floating(dtype())) {
    throw std::invalid_argument(fmt::format(
        "set_requires_grad: only floating tensors can require grad, got {}", dtype_name(dtype())));
  }
  if (requires_grad || meta_of(*this)) autograd::ensure_meta(*this).requires_grad = requires_grad;
  return *this;
}

Tensor Tensor::grad() const {
  const AutogradMeta* meta = meta_of(*this);
  return meta ? meta->grad : Tensor();
}

void Tensor::set_grad(const Tensor& grad) const {
  if (grad.defined() && (grad.sizes() != sizes() || grad.dtype() != dtype())) {
    throw std::invalid_argument(fmt::format("set_grad: gradient is {} {}, tensor is {} {}",
                                            shape_str(grad.sizes()), dtype_name(grad.dtype()),
                                            shape_str(sizes()), dtype_name(dtype())));
  }
  if (!grad.defined() && !meta_of(*this)) return;
  autograd::ensure_meta(*this).grad = grad;
}

bool Tensor::is_leaf() const {
  const AutogradMeta* meta = meta_of(*this);
  return !meta || !meta->grad_fn;
}

std::shared_ptr<autograd::Node> Tensor::grad_fn() const {
  const AutogradMeta* meta = meta_of(*this);
  return meta ? meta->grad_fn : nullptr;
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  autograd::Engine::backward({*this}, {gradient}, retain_graph);
}

void Tensor::register_hook(std::function<Tensor(const Tensor&)> hook) const {
  if (!requires_grad()) {
    throw std::invalid_argument("register_hook: the tensor does not require grad");
  }
  AutogradMeta& meta = autograd::ensure_meta(*this);
  if (meta.grad_fn) {
    meta.grad_fn->add_pre_hook(meta.output_nr, std::move(hook));
  } else {
    meta.hooks.push_back(std::move(hook));
  }
}

Tensor Tensor::detach() const {
  return ops::alias(*this);
}

// ---- differentiable views and conversions ----------------------------------------------

namespace {

// Records `out` as `name` applied to `input`, unless the op handed back `input` itself.
Tensor record_unary(const char* name, const Tensor& input, Tensor out,
                    std::function<Tensor(const Tensor&)> input_grad) {
  if (out.is_same(input)) return out;
  return autograd::record(name, {input}, std::move(out),
                          [input_grad = std::move(input_grad)](const Tensor& grad) {
                            return std::vector<Tensor>{input_grad(grad)};
                          });
}

// Gradient of a view that picks part of its input: zeros with `grad` written into that part.
template <typename PickPart>
Tensor scatter_into_zeros(const Tensor& grad, const Shape& input_shape, PickPart pick_part) {
  Tensor input_grad =
      zeros(input_shape, TensorOptions{}.with_dtype(grad.dtype()).with_device(grad.device()));
  ops::copy_(pick_part(input_grad), grad);
  return input_grad;
}

}  // namespace

Tensor Tensor::reshape(const Shape& shape) const {
  return record_unary(
      "ReshapeBackward", *this, ops::reshape(*this, shape),
      [input_shape = sizes()](const Tensor& grad) { return ops::reshape(grad, input_shape); });
}

Tensor Tensor::view(const Shape& shape) const {
  return record_unary(
      "ViewBackward", *this, ops::view(*this, shape),
      [input_shape = sizes()](const Tensor& grad) { return ops::reshape(grad, input_shape); });
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  return record_unary(
      "FlattenBackward", *this, ops::flatten(*this, start_dim, end_dim),
      [input_shape = sizes()](const Tensor& grad) { return ops::reshape(grad, input_shape); });
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  return record_unary(
      "TransposeBackward", *this, ops::transpose(*this, dim0, dim1),
      [dim0, dim1](const Tensor& grad) { return ops::transpose(grad, dim0, dim1); });
}

Tensor Tensor::t() const {
  if (dim() > 2) {
    throw std::invalid_argument(
        fmt::format("t: expected a tensor of at most 2 dims, got {}", shape_str(sizes())));
  }
  if (dim() < 2) return *this;
  return transpose(0, 1);
}

Tensor Tensor::permute(const Shape& dims) const {
  Tensor out = ops::permute(*this, dims);
  Shape inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    inverse[size_t(wrap_dim(dims[i], int64_t(dims.size()), "permute"))] = int64_t(i);
  }
  return record_unary("PermuteBackward", *this, std::move(out),
                      [inverse](const Tensor& grad) { return ops::permute(grad, inverse); });
}

Tensor Tensor::narrow(int64_t dim, int64_t start, int64_t length) const {
  return record_unary("NarrowBackward", *this, ops::narrow(*this, dim, start, length),
                      [input_shape = sizes(), dim, start, length](const Tensor& grad) {
                        return scatter_into_zeros(grad, input_shape, [&](const Tensor& whole) {
                          return ops::narrow(whole, dim, start, length);
                        });
                      });
}

Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  return record_unary("SliceBackward", *this, ops::slice(*this, dim, start, end, step),
                      [input_shape = sizes(), dim, start, end, step](const Tensor& grad) {
                        return scatter_into_zeros(grad, input_shape, [&](const Tensor& whole) {
                          return ops::slice(whole, dim, start, end, step);
                        });
                      });
}

Tensor Tensor::select(int64_t dim, int64_t index) const {
  return record_unary("SelectBackward", *this, ops::select(*this, dim, index),
                      [input_shape = sizes(), dim, index](const Tensor& grad) {
                        return scatter_into_zeros(grad, input_shape, [&](const Tensor& whole) {
                          return ops::select(whole, dim, index);
                        });
                      });
}

Tensor Tensor::expand(const Shape& shape) const {
  return record_unary(
      "ExpandBackward", *this, ops::expand(*this, shape),
      [input_shape = sizes()](const Tensor& grad) { return ops::sum_to_shape(grad, input_shape); });
}

Tensor Tensor::squeeze(int64_t dim) const {
  return record_unary(
      "SqueezeBackward", *this, ops::squeeze(*this, dim),
      [input_shape = sizes()](const Tensor& grad) { return ops::reshape(grad, input_shape); });
}

Tensor Tensor::squeeze() const {
  return record_unary(
      "SqueezeBackward", *this, ops::squeeze(*this),
      [input_shape = sizes()](const Tensor& grad) { return ops::reshape(grad, input_shape); });
}

Tensor Tensor::unsqueeze(int64_t dim) const {
  return record_unary(
      "UnsqueezeBackward", *this, ops::unsqueeze(*this, dim),
      [input_shape = sizes()](const Tensor& grad) { return ops::reshape(grad, input_shape); });
}

Tensor Tensor::contiguous() const {
  return record_unary("ContiguousBackward", *this, ops::contiguous(*this),
                      [](const Tensor& grad) { return grad; });
}

Tensor Tensor::to(DType target) const {
  Tensor out = ops::to_dtype(*this, target);
  // Integer results carry no gradient, as in PyTorch.
  if (!is_floating(target)) return out;
  return record_unary(
      "ToBackward", *this, std::move(out),
      [input_dtype = dtype()](const Tensor& grad) { return ops::to_dtype(grad, input_dtype); });
}

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  return record_unary(
      "ToDeviceBackward", *this, ops::to_device(*this, target),
      [input_device = device()](const Tensor& grad) { return ops::to_device(grad, input_device); });
}

Tensor Tensor::clone() const {
  return record_unary("CloneBackward", *this, ops::clone(*this),
                      [](const Tensor& grad) { return grad; });
}

}  // namespace zt
