// QuantizedEmbedding: lookups that dequantize the rows they read (quant/quantized_embedding.h).
#include "quant/quantized_embedding.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/parallel.h"

namespace zt::quant {

QuantizedEmbedding::QuantizedEmbedding(const Tensor& weight, int bits, QuantizationType type) {
  if (weight.dim() != 2) {
    throw std::invalid_argument(
        fmt::format("QuantizedEmbedding: expected a table [num_embeddings, embedding_dim], got {}",
                    shape_str(weight.sizes())));
  }
  // One group per row: a scale per token vector (4 bytes next to its embedding_dim codes).
  weight_ = quantize_weight(weight, bits, weight.size(0), type);
  weight_.codes = register_buffer("weight_codes", weight_.codes);
  weight_.scales = register_buffer("weight_scales", weight_.scales);
  if (weight_.zero_points.defined())
    weight_.zero_points = register_buffer("weight_zero_points", weight_.zero_points);
}

std::string QuantizedEmbedding::extra_repr() const {
  return fmt::format("{}, {}, int{} {}, a scale per row", weight_.rows, weight_.cols, weight_.bits,
                     weight_.type == QuantizationType::symmetric ? "symmetric" : "asymmetric");
}

Tensor QuantizedEmbedding::forward(const Tensor& indices) {
  if (indices.dtype() != DType::i64 || !indices.device().is_cpu()) {
    throw std::invalid_argument(
        fmt::format("QuantizedEmbedding: expected i64 indices on the CPU, got {} on {}",
                    dtype_name(indices.dtype()), indices.device().str()));
  }
  autograd::NoGradGuard inference;
  const Tensor flat = indices.contiguous();
  const int64_t* ids = flat.data_ptr<int64_t>();
  const int64_t count = flat.numel(), width = weight_.cols;
  for (int64_t i = 0; i < count; ++i) {
    if (ids[i] < 0 || ids[i] >= weight_.rows) {
      throw std::out_of_range(
          fmt::format("QuantizedEmbedding: index {} outside [0, {})", ids[i], weight_.rows));
    }
  }
  Shape out_shape = indices.sizes();
  out_shape.push_back(width);
  Tensor out = empty(out_shape, TensorOptions().with_tag(MemoryTag::activation));
  float* rows = out.data_ptr<float>();
  parallel_for(0, count, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      dequantize_rows(weight_, ids[i], ids[i] + 1, rows + i * width);
  });
  return out;
}

}  // namespace zt::quant
