// Tensor: a cheap, shared handle to a TensorImpl, which is a view (sizes, strides, element
// offset, dtype) over a shared Storage. Copying a Tensor shares the data; views share the
// Storage; clone() copies.
//
// Layering: the metadata accessors below are defined in core/. The autograd surface
// (requires_grad, grad, backward, hooks) and the view/conversion methods (reshape, transpose,
// to, ...) are declared here so that users write `x.reshape(...)` as in PyTorch, but are
// defined in autograd/, because they record the graph. Code in core/ never calls them: it
// uses the non-differentiable functions of core/ops/.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/storage.h"

namespace zt {

using Shape = std::vector<int64_t>;

namespace autograd {
struct AutogradMeta;  // defined in autograd/; present only on tensors autograd has seen
class Node;
}  // namespace autograd
struct PartitionedValues;  // core/partitioned_values.h

struct TensorImpl {
  Storage storage;
  Shape sizes;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements, from storage->data()
  DType dtype = DType::f32;
  std::shared_ptr<autograd::AutogradMeta> autograd_meta;
  // Set while a parameter built inside a partitioned construction scope holds only this rank's
  // slice of its values (its storage is then unallocated); null otherwise.
  std::shared_ptr<PartitionedValues> partitioned;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- metadata (core) -------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& sizes() const;
  const Shape& strides() const;
  int64_t size(int64_t dim) const;  // negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t dim() const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  int64_t storage_offset() const;
  size_t element_size() const { return dtype_size(dtype()); }
  size_t nbytes() const { return size_t(numel()) * element_size(); }
  bool is_contiguous() const;
  const Storage& storage() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

  // Pointer to the first element (storage data + offset). data_ptr<T> checks that T matches
  // the dtype (float/double/f16/bf16/int32_t/int64_t/uint8_t/int8_t;
  // an i4x2 tensor's packed bytes through raw_data()).
  void* raw_data() const;
  template <typename T>
  T* data_ptr() const;

  // The single element of a one-element tensor, converted to double (any dtype, any device).
  double item() const;
  // All elements in row-major order, converted to double (any dtype, device, strides).
  std::vector<double> to_vector() const;
  // Printed with fmt: sizes, dtype, device and (up to a limit) the values.
  std::string str() const;

  // ---- autograd (defined in autograd/) --------------------------------------------------
  bool requires_grad() const;
  // Marks a leaf as needing a gradient. Returns *this for chaining.
  const Tensor& set_requires_grad(bool requires_grad) const;
  // The accumulated gradient of a leaf (undefined until a backward reaches it).
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  bool is_leaf() const;
  std::shared_ptr<autograd::Node> grad_fn() const;
  // Back-propagates from this tensor. A scalar needs no gradient argument.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  // Called with the gradient flowing into this tensor; may return a replacement (defined) or
  // an undefined Tensor to keep it unchanged.
  void register_hook(std::function<Tensor(const Tensor&)> hook) const;
  // A view of the same data outside the graph.
  Tensor detach() const;

  // ---- differentiable views and conversions (defined in autograd/) ----------------------
  Tensor reshape(const Shape& shape) const;  // a view when strides allow, else a copy; -1 ok
  Tensor view(const Shape& shape) const;     // a view or an error
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor t() const;  // 2-d transpose
  Tensor permute(const Shape& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes dim
  Tensor expand(const Shape& shape) const;          // -1 keeps a size
  Tensor squeeze(int64_t dim) const;
  Tensor squeeze() const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor contiguous() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;  // a copy on `device` (the same tensor when already there)
  Tensor clone() const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Shape helpers shared by every layer.
int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3]"
// Wraps a possibly negative dim into [0, rank); throws std::out_of_range naming `what`.
int64_t wrap_dim(int64_t dim, int64_t rank, const char* what = "dim");

}  // namespace zt
