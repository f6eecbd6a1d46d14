// Tile products and the vectorised exp of the CPU attention kernels (cpu_attention_tiles.h).
// The exp is the kernels' main cost after the products (one per visible score, twice in the
// backward), so it is a branch-free polynomial that the compiler vectorises, built for AVX-512,
// AVX2 and plain x86-64, picked at load time by the processor (GCC's target_clones).
#include "core/cpu/cpu_attention_tiles.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace zt::cpu::attention_tiles {

namespace {

CBLAS_TRANSPOSE blas_transpose(bool transpose) {
  return transpose ? CblasTrans : CblasNoTrans;
}

// BLAS rejects a leading dimension below the stored row length even for one row.
int64_t leading(int64_t ld, int64_t stored_cols) {
  return std::max<int64_t>(ld, std::max<int64_t>(1, stored_cols));
}

template <typename C>
void scale_rows(int64_t m, int64_t n, C beta, C* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == C(0) ? C(0) : beta * c[i * ldc + j];
  }
}

}  // namespace

void tile_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_rows(m, n, beta, c, ldc);
  cblas_sgemm(CblasRowMajor, blas_transpose(transpose_a), blas_transpose(transpose_b), blasint(m),
              blasint(n), blasint(k), alpha, a, blasint(leading(lda, transpose_a ? m : k)), b,
              blasint(leading(ldb, transpose_b ? k : n)), beta, c, blasint(leading(ldc, n)));
}

void tile_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, double alpha,
               const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
               int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_rows(m, n, beta, c, ldc);
  cblas_dgemm(CblasRowMajor, blas_transpose(transpose_a), blas_transpose(transpose_b), blasint(m),
              blasint(n), blasint(k), alpha, a, blasint(leading(lda, transpose_a ? m : k)), b,
              blasint(leading(ldb, transpose_b ? k : n)), beta, c, blasint(leading(ldc, n)));
}

// exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in
// two for an exact reduction), exp(r) by its Taylor series to r^7 (error below 1e-8 there).
// Below -87.3 (where 2^n would leave the normal range) the result is 0, as for -inf.
__attribute__((target_clones("avx512f", "avx2", "default"))) float exp_shifted(float* row,
                                                                               int64_t count,
                                                                               float shift) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2High = 0.693359375f, kLn2Low = -2.12194440e-4f;
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < count; ++j) {
    const float x = row[j] - shift;
    const float clamped = x < -87.3f ? -87.3f : x;
    const float n = (clamped * kLog2e + kRoundMagic) - kRoundMagic;
    const float r = (clamped - n * kLn2High) - n * kLn2Low;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t exponent_bits = (int32_t(n) + 127) << 23;
    float two_to_n;
    std::memcpy(&two_to_n, &exponent_bits, sizeof two_to_n);
    const float value = x < -87.3f ? 0.0f : p * two_to_n;
    row[j] = value;
    sum += value;
  }
  return sum;
}

double exp_shifted(double* row, int64_t count, double shift) {
  double sum = 0.0;
  for (int64_t j = 0; j < count; ++j) {
    row[j] = std::exp(row[j] - shift);  // exp(-inf) is 0
    sum += row[j];
  }
  return sum;
}

}  // namespace zt::cpu::attention_tiles
