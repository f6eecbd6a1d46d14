// A Linear layer whose weight is stored quantized (quant/weight_quantization.h): y = x W^T + b
// with W = scale * (code - zero) per group of rows. Two ways to multiply:
//   weight-only (int8 or int4): f32 activations times W, each panel of 64 rows of W turned
//     into f32 just before its sgemm, so no full f32 copy of W ever exists;
//   W8A8 (int8 weights and per-token int8 activations): an exact int32 GEMM
//     (core/cpu/cpu_int8_gemm.h), rescaled by the token's and the weight group's scales.
// Inference only: no gradients. Its state (codes, scales, zero points, bias) is in buffers.
#pragma once

#include <optional>
#include <vector>

#include "nn/module.h"
#include "quant/activation_quantization.h"
#include "quant/weight_quantization.h"

namespace zt::quant {

class QuantizedLinear final : public nn::Module {
 public:
  // `weight` f32 [out, in] (a Linear's layout); `bias` [out] or undefined. With
  // `activation_type`, the layer runs W8A8 (needs 8-bit weights), else weight-only.
  QuantizedLinear(const Tensor& weight, const Tensor& bias, int bits, int64_t groups,
                  QuantizationType weight_type, std::optional<QuantizationType> activation_type);
  // A weight-only layer over codes another layer already holds (a tied LM head reading its
  // QuantizedEmbedding's table): the same tensors, not a copy.
  QuantizedLinear(const QuantizedWeight& shared, const Tensor& bias);
  std::string type_name() const override { return "QuantizedLinear"; }
  std::string extra_repr() const override;
  const QuantizedWeight& quantized_weight() const { return weight_; }
  bool quantizes_activations() const { return activation_type_.has_value(); }
  // Bytes this layer holds for its weight and bias (codes, scales, zero points, the W8A8 code
  // sums, bias): the layer's share of the model's weight bytes.
  size_t weight_bytes() const;
  // gelu_tanh(x W^T + b): a W8A8 layer applies GELU in its GEMM's epilogue, while the output
  // is still in registers (an MLP's first projection).
  Tensor forward_gelu_tanh(const Tensor& input);

 protected:
  Tensor forward(const Tensor& input) override;

 private:
  Tensor forward_with(const Tensor& input, bool gelu);
  void forward_weight_only(const float* x, int64_t tokens, float* y) const;
  void forward_w8a8(const float* x, int64_t tokens, float* y, bool gelu) const;

  QuantizedWeight weight_;
  Tensor bias_;  // f32 [out] or undefined
  std::optional<QuantizationType> activation_type_;
  std::vector<int32_t> weight_code_sums_;  // per output row, for the activations' zero points
  // W8A8: each output row's group scale and (asymmetric weights only) zero point, as the
  // GEMM's epilogue reads them.
  std::vector<float> row_scales_, row_zero_points_;
  // W8A8 on a VNNI processor: the codes once more, in the int8 GEMM's panel layout
  // (cpu::int8_gemm_pack_b), so no call re-packs them. Like the code sums, derived from the
  // codes when the layer is built.
  std::vector<int8_t> packed_codes_;
};

}  // namespace zt::quant
