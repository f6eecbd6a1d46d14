// Per-token activation quantization (quant/activation_quantization.h).
#include "quant/activation_quantization.h"

#include <algorithm>
#include <cmath>

#include "core/parallel.h"

namespace zt::quant {

namespace {

void quantize_row(const float* x, int64_t features, QuantizationType type, uint8_t* codes,
                  float& scale, int32_t& zero, int32_t& code_sum) {
  float low = 0.0f, high = 0.0f;  // the grid holds 0, as the weights' does
  for (int64_t i = 0; i < features; ++i) {
    low = std::min(low, x[i]);
    high = std::max(high, x[i]);
  }
  if (type == QuantizationType::symmetric) {
    float max_abs = std::max(-low, high);
    scale = max_abs > 0 ? max_abs / 127.0f : 1.0f;
    zero = 128;
  } else {
    scale = high > low ? (high - low) / 255.0f : 1.0f;
    zero = std::clamp(int32_t(std::nearbyint(-low / scale)), 0, 255);
  }
  float code_low = type == QuantizationType::symmetric ? 1.0f : 0.0f;
  int32_t sum = 0;
  for (int64_t i = 0; i < features; ++i) {
    float code = std::clamp(std::nearbyint(x[i] / scale) + float(zero), code_low, 255.0f);
    codes[i] = uint8_t(code);
    sum += int32_t(codes[i]);
  }
  code_sum = sum;
}

}  // namespace

QuantizedTokens quantize_tokens(const float* x, int64_t tokens, int64_t features,
                                QuantizationType type) {
  QuantizedTokens result;
  result.tokens = tokens;
  result.features = features;
  result.codes.resize(size_t(tokens * features));
  result.scales.resize(size_t(tokens));
  result.zero_points.resize(size_t(tokens));
  result.code_sums.resize(size_t(tokens));
  parallel_for(0, tokens, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      quantize_row(x + t * features, features, type, result.codes.data() + t * features,
                   result.scales[size_t(t)], result.zero_points[size_t(t)],
                   result.code_sums[size_t(t)]);
    }
  });
  return result;
}

}  // namespace zt::quant
