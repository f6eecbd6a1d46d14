// Tensor creation: every tensor is a fresh contiguous Storage from make_storage, filled by the
// kernels of backend_for(device) (fill, copy, arange, uniform, normal), so creation works the
// same on every device. Random creation reserves numel counters of the generator.
#include "core/factory.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/backend.h"

namespace zt {

TensorOptions options_of(const Tensor& tensor) {
  return {.dtype = tensor.dtype(), .device = tensor.device(), .tag = tensor.storage()->tag()};
}

Tensor empty(const Shape& shape, const TensorOptions& options) {
  for (int64_t size : shape) {
    if (size < 0) {
      throw std::invalid_argument(
          fmt::format("empty: shape {} has a negative size", shape_str(shape)));
    }
  }
  int64_t numel = shape_numel(shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = make_storage(size_t(numel) * dtype_size(options.dtype), options.device,
                               options.tag.value_or(current_memory_tag()));
  impl->sizes = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = options.dtype;
  return Tensor(std::move(impl));
}

Tensor full(const Shape& shape, double value, const TensorOptions& options) {
  Tensor tensor = empty(shape, options);
  if (tensor.numel() > 0) backend_for(options.device).fill(tensor, value);
  return tensor;
}

Tensor zeros(const Shape& shape, const TensorOptions& options) {
  return full(shape, 0.0, options);
}
Tensor ones(const Shape& shape, const TensorOptions& options) {
  return full(shape, 1.0, options);
}
Tensor scalar_tensor(double value, const TensorOptions& options) {
  return full({}, value, options);
}

Tensor arange(double start, double end, double step, const TensorOptions& options) {
  if (step == 0.0 || !std::isfinite(step) || !std::isfinite(start) || !std::isfinite(end)) {
    throw std::invalid_argument(fmt::format(
        "arange: start {}, end {} and step {} must be finite with step != 0", start, end, step));
  }
  double count = std::ceil((end - start) / step);
  int64_t length = count > 0 ? int64_t(count) : 0;
  Tensor tensor = empty({length}, options);
  if (length > 0) backend_for(options.device).arange(tensor, start, step);
  return tensor;
}

Tensor empty_like(const Tensor& tensor) {
  return empty(tensor.sizes(), options_of(tensor));
}
Tensor zeros_like(const Tensor& tensor) {
  return full(tensor.sizes(), 0.0, options_of(tensor));
}
Tensor ones_like(const Tensor& tensor) {
  return full(tensor.sizes(), 1.0, options_of(tensor));
}

// Wraps host values of type T (f64 or i64) in a CPU tensor and copies (converting) into a new
// tensor of `options`, so that the conversion rules are the copy kernel's.
template <typename T>
static Tensor from_host(std::span<const T> values, DType host_dtype, const Shape& shape,
                        const TensorOptions& options, const char* op) {
  int64_t numel = shape_numel(shape);
  if (int64_t(values.size()) != numel) {
    throw std::invalid_argument(fmt::format("{}: {} values do not fill shape {} ({} elements)", op,
                                            values.size(), shape_str(shape), numel));
  }
  bool host_is_result = options.dtype == host_dtype && options.device.is_cpu();
  // A staging tensor is accounted as `other`, so that it never shows in a param/grad peak.
  Tensor host = empty(shape, {.dtype = host_dtype,
                              .device = Device::cpu(),
                              .tag = host_is_result ? options.tag : MemoryTag::other});
  if (numel > 0) std::memcpy(host.raw_data(), values.data(), values.size() * sizeof(T));
  if (host_is_result) return host;
  Tensor result = empty(shape, options);
  if (numel > 0) backend_for(options.device).copy(host, result);
  return result;
}

Tensor from_values(std::span<const double> values, const Shape& shape,
                   const TensorOptions& options) {
  return from_host(values, DType::f64, shape, options, "from_values");
}

Tensor from_values(std::initializer_list<double> values, const Shape& shape,
                   const TensorOptions& options) {
  return from_values(std::span<const double>(values.begin(), values.size()), shape, options);
}

Tensor from_int64(std::span<const int64_t> values, const Shape& shape,
                  const TensorOptions& options) {
  return from_host(values, DType::i64, shape, options, "from_int64");
}

static void check_random_target(const Tensor& tensor, const char* op) {
  if (!is_floating(tensor.dtype())) {
    throw std::invalid_argument(
        fmt::format("{}: dtype {} is not floating", op, dtype_name(tensor.dtype())));
  }
  if (!tensor.is_contiguous()) {
    throw std::invalid_argument(
        fmt::format("{}: tensor of shape {} and strides {} is not "
                    "contiguous",
                    op, shape_str(tensor.sizes()), shape_str(tensor.strides())));
  }
}

void uniform_(const Tensor& tensor, double low, double high, Generator* generator) {
  check_random_target(tensor, "uniform_");
  if (!(low <= high)) {
    throw std::invalid_argument(fmt::format("uniform_: low {} must not exceed high {}", low, high));
  }
  Generator& source = generator != nullptr ? *generator : default_generator();
  uint64_t offset = source.reserve(uint64_t(tensor.numel()));
  if (tensor.numel() > 0) {
    backend_for(tensor.device()).uniform(tensor, low, high, source.seed(), offset);
  }
}

void normal_(const Tensor& tensor, double mean, double stddev, Generator* generator) {
  check_random_target(tensor, "normal_");
  if (!(stddev >= 0)) {
    throw std::invalid_argument(fmt::format("normal_: stddev {} must be >= 0", stddev));
  }
  Generator& source = generator != nullptr ? *generator : default_generator();
  uint64_t offset = source.reserve(uint64_t(tensor.numel()));
  if (tensor.numel() > 0) {
    backend_for(tensor.device()).normal(tensor, mean, stddev, source.seed(), offset);
  }
}

Tensor uniform(const Shape& shape, double low, double high, const TensorOptions& options,
               Generator* generator) {
  Tensor tensor = empty(shape, options);
  uniform_(tensor, low, high, generator);
  return tensor;
}

Tensor normal(const Shape& shape, double mean, double stddev, const TensorOptions& options,
              Generator* generator) {
  Tensor tensor = empty(shape, options);
  normal_(tensor, mean, stddev, generator);
  return tensor;
}

Tensor rand(const Shape& shape, const TensorOptions& options, Generator* generator) {
  return uniform(shape, 0.0, 1.0, options, generator);
}

Tensor randn(const Shape& shape, const TensorOptions& options, Generator* generator) {
  return normal(shape, 0.0, 1.0, options, generator);
}

}  // namespace zt
