// A Linear layer whose weight is stored quantized (quant/weight_quantization.h): y = x W^T + b
// with W = scale * (code - zero) per group of rows. Two ways to multiply:
//   weight-only (int8 or int4): f32 activations times W, each panel of 64 rows of W turned
//     into f32 just before its sgemm, so no full f32 copy of W ever exists;
//   W8A8 (int8 weights and per-token int8 activations): an exact int32 GEMM
//     (core/cpu/cpu_int8_gemm.h), rescaled by the token's and the weight group's scales.
// Inference only: no gradients. Its state (codes, scales, zero points, bias) is in buffers; a
// W8A8 layer holds its codes only in the int8 GEMM's panel layout (cpu::int8_gemm_pack_b) and
// saves and loads them row-major ("weight_codes" [out, in]), as a weight-only layer holds them.
#pragma once

#include <optional>
#include <vector>

#include "core/cpu/cpu_int8_gemm.h"
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
  // The weight, its codes row-major: a W8A8 layer's unpacked from its panels (a copy).
  QuantizedWeight quantized_weight() const;
  // The codes tensor as held (a W8A8 layer's panels): shared with a tied embedding or not.
  const Tensor& held_codes() const { return activation_type_ ? packed_codes_ : weight_.codes; }
  bool quantizes_activations() const { return activation_type_.has_value(); }
  // Bytes of the codes as held, the group scales and zero points.
  size_t matrix_bytes() const;
  // Those and the rest this layer holds for its weight and bias (a W8A8 layer's per-row code
  // sums, scales and zero points; the bias): the layer's share of the model's weight bytes.
  size_t weight_bytes() const;
  // gelu_tanh(x W^T + b): a W8A8 layer applies GELU in its GEMM's epilogue, while the output
  // is still in registers (an MLP's first projection).
  Tensor forward_gelu_tanh(const Tensor& input);

 protected:
  Tensor forward(const Tensor& input) override;
  NamedTensors saved_buffers() const override;
  void load_saved_buffers(const NamedTensors& values) override;

 private:
  // Registers the buffers both constructors hold (the codes as held, scales, zero points,
  // bias) and keeps the members pointing at them.
  void register_state(const Tensor& bias);
  // A W8A8 layer's per-row tables (code sums, scales, zero points) from its panels and groups.
  void derive_w8a8_tables();
  Tensor forward_with(const Tensor& input, bool gelu);
  void forward_weight_only(const float* x, int64_t tokens, float* y) const;
  void forward_w8a8(const float* x, int64_t tokens, float* y, bool gelu) const;
  // W8A8 on a CUDA input (quant/quantized_linear_device.cpp): the int8 product on the GPU.
  Tensor forward_w8a8_device(const Tensor& input, bool gelu);
  // The epilogue's terms for `tokens` quantized tokens, writing y [tokens, out]: a one-group
  // weight's scale folded into the tokens' scales, their centred code sums when the weight
  // has zero points (into `centred_sums`).
  cpu::Int8GemmRescale rescale_for(QuantizedTokens& activations, int64_t tokens,
                                   std::vector<float>& centred_sums, float* y, bool gelu) const;

  QuantizedWeight weight_;  // a W8A8 layer's `codes` stay undefined: it holds packed_codes_
  Tensor bias_;             // f32 [out] or undefined
  std::optional<QuantizationType> activation_type_;
  // W8A8: the codes in the int8 GEMM's panel layout, i8 [int8_gemm_packed_b_bytes(out, in)],
  // the only copy, so no call re-packs them.
  Tensor packed_codes_;
  // W8A8, derived from the panels and groups: per output row, the code sum (for the
  // activations' zero points), the group's scale (not with one group, whose scale is folded
  // into the tokens', nor with a group per row, whose scales are read in place) and,
  // asymmetric weights only, its zero point, as the epilogue reads them.
  std::vector<int32_t> weight_code_sums_;
  std::vector<float> row_scales_, row_zero_points_;
  // CUDA inputs: the codes row-major, [out, in rounded up to 4] (cuBLASLt's int8 kernels take
  // whole quads), on the device last used; uploaded from the panels on first use.
  Tensor device_codes_;
};

}  // namespace zt::quant
