// Creating tensors: empty/zeros/ones/full/arange, from host values, and random.
// New tensors are contiguous. Their allocation tag is options.tag, else the thread's
// current_memory_tag().
#pragma once

#include <initializer_list>
#include <optional>
#include <span>
#include <vector>

#include "core/allocator.h"
#include "core/generator.h"
#include "core/tensor.h"

namespace zt {

struct TensorOptions {
  DType dtype = DType::f32;
  Device device = Device::cpu();
  std::optional<MemoryTag> tag;

  TensorOptions with_dtype(DType value) const {
    TensorOptions copy = *this;
    copy.dtype = value;
    return copy;
  }
  TensorOptions with_device(Device value) const {
    TensorOptions copy = *this;
    copy.device = value;
    return copy;
  }
  TensorOptions with_tag(MemoryTag value) const {
    TensorOptions copy = *this;
    copy.tag = value;
    return copy;
  }
};

// The options a tensor was made with (dtype, device, its storage's tag).
TensorOptions options_of(const Tensor& tensor);

Tensor empty(const Shape& shape, const TensorOptions& options = {});
Tensor zeros(const Shape& shape, const TensorOptions& options = {});
Tensor ones(const Shape& shape, const TensorOptions& options = {});
Tensor full(const Shape& shape, double value, const TensorOptions& options = {});
Tensor scalar_tensor(double value, const TensorOptions& options = {});  // 0-d
Tensor arange(double start, double end, double step = 1.0, const TensorOptions& options = {});
Tensor empty_like(const Tensor& tensor);  // same shape, dtype, device and tag; contiguous
Tensor zeros_like(const Tensor& tensor);
Tensor ones_like(const Tensor& tensor);

// Host values (converted to options.dtype); values.size() must equal the shape's numel.
Tensor from_values(std::span<const double> values, const Shape& shape,
                   const TensorOptions& options = {});
Tensor from_values(std::initializer_list<double> values, const Shape& shape,
                   const TensorOptions& options = {});
Tensor from_int64(std::span<const int64_t> values, const Shape& shape,
                  const TensorOptions& options = TensorOptions().with_dtype(DType::i64));

// Uniform in [low, high) and normal(mean, stddev), from `generator` or the default one.
Tensor rand(const Shape& shape, const TensorOptions& options = {}, Generator* generator = nullptr);
Tensor randn(const Shape& shape, const TensorOptions& options = {}, Generator* generator = nullptr);
Tensor uniform(const Shape& shape, double low, double high, const TensorOptions& options = {},
               Generator* generator = nullptr);
Tensor normal(const Shape& shape, double mean, double stddev, const TensorOptions& options = {},
              Generator* generator = nullptr);
// In place on a contiguous tensor (used by initialisers).
void uniform_(const Tensor& tensor, double low, double high, Generator* generator = nullptr);
void normal_(const Tensor& tensor, double mean, double stddev, Generator* generator = nullptr);

}  // namespace zt
