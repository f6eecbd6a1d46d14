// Dynamic per-token activation quantization (ZeroQuant): each row of X [tokens, features] gets
// its own 8-bit grid at run time, value = scale * (code - zero). Codes are unsigned bytes, the
// operand the int8 GEMM takes (core/cpu/cpu_int8_gemm.h): a symmetric row uses codes
// 128 + [-127, 127] (zero 128), an asymmetric one [0, 255] from its min to its max. Each row's
// code sum is kept for the GEMM's zero-point correction. Rounding: nearest, ties to even.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/weight_quantization.h"

namespace zt::quant {

struct QuantizedTokens {
  int64_t tokens = 0, features = 0;
  std::vector<uint8_t> codes;  // [tokens, features]
  std::vector<float> scales;   // [tokens]
  std::vector<int32_t> zero_points;
  std::vector<int32_t> code_sums;  // sum of each row's codes
};

// `x` points to `tokens` contiguous rows of `features` floats.
QuantizedTokens quantize_tokens(const float* x, int64_t tokens, int64_t features,
                                QuantizationType type);
// The same into `out`, reusing its vectors' memory (a layer called every step keeps one per
// thread, so no call maps fresh pages for its codes), on the calling thread.
void quantize_tokens_into(const float* x, int64_t tokens, int64_t features, QuantizationType type,
                          QuantizedTokens& out);

}  // namespace zt::quant
