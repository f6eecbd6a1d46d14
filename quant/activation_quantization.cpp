// Per-token activation quantization (quant/activation_quantization.h).
#include "quant/activation_quantization.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/parallel.h"

namespace zt::quant {

namespace {

void quantize_row(const float* x, int64_t features, QuantizationType type, uint8_t* codes,
                  float& scale, int32_t& zero, int32_t& code_sum) {
  float low = 0.0f, high = 0.0f;  // the grid holds 0, as the weights' does
#pragma omp simd reduction(min : low) reduction(max : high)
  for (int64_t i = 0; i < features; ++i) {  // selects, not std::min: those vectorize
    low = x[i] < low ? x[i] : low;
    high = x[i] > high ? x[i] : high;
  }
  if (type == QuantizationType::symmetric) {
    float max_abs = std::max(-low, high);
    scale = max_abs > 0 ? max_abs / 127.0f : 1.0f;
    zero = 128;
  } else {
    scale = high > low ? (high - low) / 255.0f : 1.0f;
    zero = std::clamp(int32_t(std::nearbyint(-low / scale)), 0, 255);
  }
  // Adding 1.5 * 2^23 to a float of magnitude below 2^22 rounds it to an integer (nearest,
  // ties to even, as nearbyint) held in the low mantissa bits: read as an int32 less the
  // constant's bits, it is that integer. No libm call and only integer clamps, so the loop
  // vectorizes (with nearbyint it took as long as the int8 GEMM it feeds). |x / scale| is at
  // most 255 by the choice of scale; a NaN or infinity gives some code, clamped, never UB.
  constexpr float kRoundingMagic = 12582912.0f;
  constexpr int32_t kRoundingMagicBits = 0x4B400000;
  float inverse = 1.0f / scale;
  int32_t code_low = type == QuantizationType::symmetric ? 1 : 0;
#pragma omp simd
  for (int64_t i = 0; i < features; ++i) {
    float biased = x[i] * inverse + kRoundingMagic;
    int32_t bits;
    std::memcpy(&bits, &biased, sizeof(bits));
    int32_t code = bits - kRoundingMagicBits + zero;
    code = std::max(code, code_low);
    code = std::min(code, 255);
    codes[i] = uint8_t(code);
  }
  int32_t sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < features; ++i) sum += int32_t(codes[i]);
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
