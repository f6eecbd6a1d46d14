// An Embedding whose table is stored quantized, one scale (and zero point) per row: the row is
// one token's (or position's) vector, so each keeps its own range. A lookup dequantizes only
// the rows asked for. A tied LM head reads the same codes (QuantizedLinear over this layer's
// QuantizedWeight), so quantizing GPT-2's wte and wpe leaves no f32 table in the model.
// Inference only, on the CPU.
#pragma once

#include "nn/module.h"
#include "quant/weight_quantization.h"

namespace zt::quant {

class QuantizedEmbedding final : public nn::Module {
 public:
  // `weight` f32 [num_embeddings, embedding_dim]; bits 8 or 4.
  QuantizedEmbedding(const Tensor& weight, int bits, QuantizationType type);
  std::string type_name() const override { return "QuantizedEmbedding"; }
  std::string extra_repr() const override;
  const QuantizedWeight& quantized_weight() const { return weight_; }

 protected:
  // indices i64 of any shape -> f32 [..., embedding_dim]; an index outside the table throws
  // naming it.
  Tensor forward(const Tensor& indices) override;

 private:
  QuantizedWeight weight_;
};

}  // namespace zt::quant
