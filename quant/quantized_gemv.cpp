// The weight-only layer's one-token product: each row's codes are read once, widened to f32 in
// vector registers and multiplied with x; the group's scale and zero point are applied to the
// row's sum, not to every code (value = scale * (code - zero)).
#include "quant/quantized_gemv.h"

#include <algorithm>

#include "core/parallel.h"

namespace zt::quant {

namespace {

constexpr int64_t kRowsPerTask = 64;

// The clones let one binary use AVX-512 or AVX2 where the processor has them.
__attribute__((target_clones("avx512f", "avx2", "default"))) float dot_int8(const float* x,
                                                                            const int8_t* codes,
                                                                            int64_t cols) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t k = 0; k < cols; ++k) sum += x[k] * float(codes[k]);
  return sum;
}

// Two codes a byte, low nibble first, each a signed 4-bit value: shifting the nibble to the
// top of an int8 and back sign-extends it.
__attribute__((target_clones("avx512f", "avx2", "default"))) float dot_int4(const float* x,
                                                                            const uint8_t* codes,
                                                                            int64_t cols) {
  const int64_t pairs = cols / 2;
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < pairs; ++j) {
    const int8_t low = int8_t(uint8_t(codes[j] << 4)) >> 4;
    const int8_t high = int8_t(codes[j]) >> 4;
    sum += x[2 * j] * float(low) + x[2 * j + 1] * float(high);
  }
  if (cols % 2) sum += x[cols - 1] * float(int8_t(uint8_t(codes[pairs] << 4)) >> 4);
  return sum;
}

}  // namespace

void quantized_gemv(const QuantizedWeight& weight, const float* x, const float* bias, float* y) {
  const int64_t rows = weight.rows, cols = weight.cols;
  const int64_t row_bytes = weight.bits == 4 ? (cols + 1) / 2 : cols;
  const uint8_t* codes = static_cast<const uint8_t*>(weight.codes.raw_data());
  const float* scales = weight.scales.data_ptr<float>();
  const int32_t* zeros =
      weight.zero_points.defined() ? weight.zero_points.data_ptr<int32_t>() : nullptr;
  float x_sum = 0.0f;  // what each row's zero point multiplies
  for (int64_t k = 0; zeros && k < cols; ++k) x_sum += x[k];
  const int64_t rows_per_group = weight.rows_per_group();
  parallel_for(0, (rows + kRowsPerTask - 1) / kRowsPerTask, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin * kRowsPerTask; n < std::min(rows, end * kRowsPerTask); ++n) {
      const uint8_t* row = codes + n * row_bytes;
      float sum = weight.bits == 4 ? dot_int4(x, row, cols)
                                   : dot_int8(x, reinterpret_cast<const int8_t*>(row), cols);
      const int64_t group = n / rows_per_group;
      if (zeros) sum -= float(zeros[group]) * x_sum;
      y[n] = scales[group] * sum + (bias ? bias[n] : 0.0f);
    }
  });
}

}  // namespace zt::quant
