// Tensor metadata, element access and printing. Views and conversions are in core/ops/view.cpp
// (no autograd) and autograd/tensor_methods.cpp (the differentiable Tensor methods).
#include "core/tensor.h"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

#include "core/backend.h"
#include "core/factory.h"
#include "core/half.h"

namespace zt {

int64_t shape_numel(const Shape& shape) {
  int64_t count = 1;
  for (int64_t size : shape) count *= size;
  return count;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t running = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = running;
    running *= shape[i] > 0 ? shape[i] : 1;
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

int64_t wrap_dim(int64_t dim, int64_t rank, const char* what) {
  int64_t wrapped = dim < 0 ? dim + rank : dim;
  if (wrapped < 0 || wrapped >= rank) {
    throw std::out_of_range(
        fmt::format("{} {} is out of range for a tensor of rank {}", what, dim, rank));
  }
  return wrapped;
}

static const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  if (!impl) throw std::logic_error("use of an undefined Tensor");
  return *impl;
}

const Shape& Tensor::sizes() const {
  return checked(impl_).sizes;
}
const Shape& Tensor::strides() const {
  return checked(impl_).strides;
}
int64_t Tensor::size(int64_t dim) const {
  return sizes()[size_t(wrap_dim(dim, this->dim()))];
}
int64_t Tensor::stride(int64_t dim) const {
  return strides()[size_t(wrap_dim(dim, this->dim()))];
}
int64_t Tensor::dim() const {
  return int64_t(sizes().size());
}
int64_t Tensor::numel() const {
  return shape_numel(sizes());
}
DType Tensor::dtype() const {
  return checked(impl_).dtype;
}
Device Tensor::device() const {
  return checked(impl_).storage->device();
}
int64_t Tensor::storage_offset() const {
  return checked(impl_).offset;
}
const Storage& Tensor::storage() const {
  return checked(impl_).storage;
}

bool Tensor::is_contiguous() const {
  const TensorImpl& impl = checked(impl_);
  int64_t expected = 1;
  for (size_t i = impl.sizes.size(); i-- > 0;) {
    if (impl.sizes[i] == 1) continue;  // any stride is fine for a size-1 dim
    if (impl.strides[i] != expected) return false;
    expected *= impl.sizes[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  const TensorImpl& impl = checked(impl_);
  if (!impl.storage->is_materialized()) {
    // ZeRO stage 3 releases a partitioned parameter's buffer between uses; its owner knows
    // which parameter lies at this offset (a transposed view's shape alone misleads).
    std::string held =
        impl.storage->describe_released(size_t(impl.offset) * dtype_size(impl.dtype));
    if (!held.empty()) {
      throw std::logic_error(
          fmt::format("{} (read through a view of shape {})", held, shape_str(impl.sizes)));
    }
    throw std::logic_error(fmt::format(
        "tensor of shape {} has no data: its storage was released (a ZeRO stage-3 parameter "
        "outside its module's forward or backward; gather it first)",
        shape_str(impl.sizes)));
  }
  return static_cast<char*>(impl.storage->data()) + impl.offset * int64_t(dtype_size(impl.dtype));
}

template <typename T>
static constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::f32;
  if constexpr (std::is_same_v<T, double>) return DType::f64;
  if constexpr (std::is_same_v<T, f16>) return DType::f16;
  if constexpr (std::is_same_v<T, bf16>) return DType::bf16;
  if constexpr (std::is_same_v<T, int32_t>) return DType::i32;
  if constexpr (std::is_same_v<T, int64_t>) return DType::i64;
  if constexpr (std::is_same_v<T, uint8_t>) return DType::u8;
  if constexpr (std::is_same_v<T, int8_t>) return DType::i8;
}

template <typename T>
T* Tensor::data_ptr() const {
  if (dtype() != dtype_of<T>()) {
    throw std::invalid_argument(fmt::format("data_ptr: tensor holds {}, asked for {}",
                                            dtype_name(dtype()), dtype_name(dtype_of<T>())));
  }
  return static_cast<T*>(raw_data());
}

template float* Tensor::data_ptr<float>() const;
template double* Tensor::data_ptr<double>() const;
template f16* Tensor::data_ptr<f16>() const;
template bf16* Tensor::data_ptr<bf16>() const;
template int32_t* Tensor::data_ptr<int32_t>() const;
template int64_t* Tensor::data_ptr<int64_t>() const;
template uint8_t* Tensor::data_ptr<uint8_t>() const;
template int8_t* Tensor::data_ptr<int8_t>() const;

static double element_as_double(const void* base, DType dtype, int64_t index) {
  switch (dtype) {
    case DType::f32:
      return static_cast<const float*>(base)[index];
    case DType::f64:
      return static_cast<const double*>(base)[index];
    case DType::f16:
      return float(static_cast<const f16*>(base)[index]);
    case DType::bf16:
      return float(static_cast<const bf16*>(base)[index]);
    case DType::i32:
      return static_cast<const int32_t*>(base)[index];
    case DType::i64:
      return double(static_cast<const int64_t*>(base)[index]);
    case DType::u8:
    case DType::i4x2:  // the packed byte as it is stored (quant/ unpacks its two values)
      return static_cast<const uint8_t*>(base)[index];
    case DType::i8:
      return static_cast<const int8_t*>(base)[index];
  }
  return 0.0;
}

std::vector<double> Tensor::to_vector() const {
  if (!device().is_cpu()) {  // through a host copy; the device backend's copy waits for it
    Tensor host =
        empty(sizes(), {.dtype = dtype(), .device = Device::cpu(), .tag = MemoryTag::other});
    if (numel() > 0) backend_for_copy(device(), Device::cpu()).copy(*this, host);
    return host.to_vector();
  }
  std::vector<double> values(static_cast<size_t>(numel()));
  const Shape& shape = sizes();
  const Shape& step = strides();
  std::vector<int64_t> index(shape.size(), 0);
  const void* base = raw_data();
  for (size_t linear = 0; linear < values.size(); ++linear) {
    int64_t element = 0;
    for (size_t d = 0; d < shape.size(); ++d) element += index[d] * step[d];
    values[linear] = element_as_double(base, dtype(), element);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return values;
}

double Tensor::item() const {
  if (numel() != 1) {
    throw std::invalid_argument(fmt::format("item: tensor of shape {} has {} elements, not 1",
                                            shape_str(sizes()), numel()));
  }
  return to_vector()[0];
}

namespace {
// Prints dimension `dim` starting at flat position `start` of a row-major value list,
// eliding the middle of long dimensions.
void append_values(std::string& text, const std::vector<double>& values, const Shape& shape,
                   size_t dim, int64_t start, bool integral) {
  constexpr int64_t kEdgeItems = 3;
  if (shape.empty()) {
    text += integral ? fmt::format("{}", int64_t(values[0])) : fmt::format("{:.6g}", values[0]);
    return;
  }
  int64_t inner = 1;
  for (size_t d = dim + 1; d < shape.size(); ++d) inner *= shape[d];
  text += '[';
  for (int64_t i = 0; i < shape[dim]; ++i) {
    if (shape[dim] > 2 * kEdgeItems && i == kEdgeItems) {
      text += "..., ";
      i = shape[dim] - kEdgeItems;
    }
    if (dim + 1 == shape.size()) {
      double value = values[size_t(start + i)];
      text += integral ? fmt::format("{}", int64_t(value)) : fmt::format("{:.6g}", value);
    } else {
      append_values(text, values, shape, dim + 1, start + i * inner, integral);
    }
    if (i + 1 < shape[dim]) text += ", ";
  }
  text += ']';
}
}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::string text = "tensor(";
  if (device().is_cpu()) {
    append_values(text, to_vector(), sizes(), 0, 0, !is_floating(dtype()));
    text += ", ";
  }
  text += fmt::format("shape={}, dtype={}, device={})", shape_str(sizes()), dtype_name(dtype()),
                      device().str());
  return text;
}

}  // namespace zt
