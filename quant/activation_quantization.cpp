// Per-token activation quantization (quant/activation_quantization.h).
#include "quant/activation_quantization.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/parallel.h"

namespace zt::quant {

namespace {

#if defined(__x86_64__) && !defined(__clang__)
// Cloned per instruction set: at SSE2 width quantizing a token took a tenth of its int8 product.
#define ZT_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ZT_VECTOR_CLONES
#endif

ZT_VECTOR_CLONES void quantize_row(const float* x, int64_t features, QuantizationType type,
                                   uint8_t* codes, float& scale, int32_t& zero, int32_t& code_sum) {
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

void size_for(QuantizedTokens& out, int64_t tokens, int64_t features) {
  out.tokens = tokens;
  out.features = features;
  out.codes.resize(size_t(tokens * features));
  out.scales.resize(size_t(tokens));
  out.zero_points.resize(size_t(tokens));
  out.code_sums.resize(size_t(tokens));
}

void quantize_rows(const float* x, int64_t begin, int64_t end, int64_t features,
                   QuantizationType type, QuantizedTokens& out) {
  for (int64_t t = begin; t < end; ++t) {
    quantize_row(x + t * features, features, type, out.codes.data() + t * features,
                 out.scales[size_t(t)], out.zero_points[size_t(t)], out.code_sums[size_t(t)]);
  }
}

}  // namespace

QuantizedTokens quantize_tokens(const float* x, int64_t tokens, int64_t features,
                                QuantizationType type) {
  QuantizedTokens result;
  size_for(result, tokens, features);
  parallel_for(0, tokens, 16, [&](int64_t begin, int64_t end) {
    quantize_rows(x, begin, end, features, type, result);
  });
  return result;
}

void quantize_tokens_into(const float* x, int64_t tokens, int64_t features, QuantizationType type,
                          QuantizedTokens& out) {
  size_for(out, tokens, features);
  quantize_rows(x, 0, tokens, features, type, out);
}

}  // namespace zt::quant
