// Tile products and the vectorised exp and row max of the CPU attention kernels
// (cpu_attention_tiles.h). After the products, the exp is the kernels' main cost (one per
// visible score, twice in the backward): a polynomial in AVX-512 where the processor has it
// (checked once at load), the same polynomial in plain loops elsewhere.
#include "core/cpu/cpu_attention_tiles.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/factory.h"

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics seed their pass-through operand with a self-initialised
// "undefined" vector, which -Wuninitialized reports at the header's lines (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

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

// The OpenBLAS path: A as stored (a_col_stride == 1) or transposed (a_row_stride == 1).
template <typename C, typename Gemm>
void blas_product(const Gemm& gemm, int64_t m, int64_t n, int64_t k, C alpha, const C* a,
                  int64_t a_row_stride, int64_t a_col_stride, const C* b, int64_t ldb,
                  bool accumulate, C* c, int64_t ldc) {
  const C beta = accumulate ? C(1) : C(0);
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_rows(m, n, beta, c, ldc);
  const bool transpose_a = a_col_stride != 1;
  const int64_t lda = leading(transpose_a ? a_col_stride : a_row_stride, transpose_a ? m : k);
  gemm(CblasRowMajor, blas_transpose(transpose_a), CblasNoTrans, blasint(m), blasint(n), blasint(k),
       alpha, a, blasint(lda), b, blasint(leading(ldb, n)), beta, c, blasint(leading(ldc, n)));
}

#if defined(__x86_64__)
constexpr int kBlockRows = 6;  // 6 x 4 accumulators + 4 rows of B + 1 broadcast: 29 of 32 zmm

// ROWS rows of C (ROWS <= 6) times up to 64 columns from j0: ROWS x VECS vectors of 16 floats
// accumulated over k in registers. FULL blocks have all VECS x 16 columns; the last block of a
// row masks off the columns past n, and computes only the vectors that hold some (a narrow
// last block, as in the 80- or 48-key tiles of block-sparse rows, would otherwise pay for 64).
template <int ROWS, int VECS, bool FULL>
__attribute__((target("avx512f"))) void product_block_avx512(int64_t n, int64_t k, float alpha,
                                                             const float* a, int64_t a_row_stride,
                                                             int64_t a_col_stride, const float* b,
                                                             int64_t ldb, bool accumulate, float* c,
                                                             int64_t ldc, int64_t j0) {
  __mmask16 lanes[VECS];
#pragma GCC unroll 4
  for (int v = 0; v < VECS; ++v) {
    const int64_t left = n - j0 - 16 * v;
    lanes[v] = left >= 16  ? __mmask16(0xFFFF)
               : left <= 0 ? __mmask16(0)
                           : __mmask16((1u << left) - 1);
  }
  __m512 sum[ROWS][VECS];
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < VECS; ++v) sum[r][v] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < k; ++p) {
    const float* b_row = b + p * ldb + j0;
    __m512 b_vectors[VECS];
#pragma GCC unroll 4
    for (int v = 0; v < VECS; ++v) {
      b_vectors[v] =
          FULL ? _mm512_loadu_ps(b_row + 16 * v) : _mm512_maskz_loadu_ps(lanes[v], b_row + 16 * v);
    }
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r) {
      const __m512 a_value = _mm512_set1_ps(a[r * a_row_stride + p * a_col_stride]);
#pragma GCC unroll 4
      for (int v = 0; v < VECS; ++v) sum[r][v] = _mm512_fmadd_ps(a_value, b_vectors[v], sum[r][v]);
    }
  }
  const __m512 scale = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
    float* c_row = c + r * ldc + j0;
#pragma GCC unroll 4
    for (int v = 0; v < VECS; ++v) {
      __m512 value = _mm512_mul_ps(sum[r][v], scale);
      if (accumulate) {
        value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(lanes[v], c_row + 16 * v));
      }
      _mm512_mask_storeu_ps(c_row + 16 * v, lanes[v], value);
    }
  }
}

using ProductBlock = void (*)(int64_t, int64_t, float, const float*, int64_t, int64_t, const float*,
                              int64_t, bool, float*, int64_t, int64_t);

template <int VECS, bool FULL>
constexpr ProductBlock kProductBlocksOf[kBlockRows + 1] = {nullptr,
                                                           product_block_avx512<1, VECS, FULL>,
                                                           product_block_avx512<2, VECS, FULL>,
                                                           product_block_avx512<3, VECS, FULL>,
                                                           product_block_avx512<4, VECS, FULL>,
                                                           product_block_avx512<5, VECS, FULL>,
                                                           product_block_avx512<6, VECS, FULL>};
// By the number of 16-column vectors a block computes (1-4) and whether they are all full.
constexpr const ProductBlock* kProductBlocks[5][2] = {
    {nullptr, nullptr},
    {kProductBlocksOf<1, false>, kProductBlocksOf<1, true>},
    {kProductBlocksOf<2, false>, kProductBlocksOf<2, true>},
    {kProductBlocksOf<3, false>, kProductBlocksOf<3, true>},
    {kProductBlocksOf<4, false>, kProductBlocksOf<4, true>}};

__attribute__((target("avx512f"))) void product_avx512(int64_t m, int64_t n, int64_t k, float alpha,
                                                       const float* a, int64_t a_row_stride,
                                                       int64_t a_col_stride, const float* b,
                                                       int64_t ldb, bool accumulate, float* c,
                                                       int64_t ldc) {
  for (int64_t i0 = 0; i0 < m; i0 += kBlockRows) {
    const int64_t rows = std::min<int64_t>(kBlockRows, m - i0);
    for (int64_t j0 = 0; j0 < n; j0 += 64) {
      const int64_t left = std::min<int64_t>(64, n - j0);
      const ProductBlock block = kProductBlocks[(left + 15) / 16][left % 16 == 0][rows];
      block(n, k, alpha, a + i0 * a_row_stride, a_row_stride, a_col_stride, b, ldb, accumulate,
            c + i0 * ldc, ldc, j0);
    }
  }
}

const bool kHasAvx512 = __builtin_cpu_supports("avx512f");
#else
const bool kHasAvx512 = false;
#endif

}  // namespace

void tile_product(int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t a_row_stride, int64_t a_col_stride, const float* b, int64_t ldb,
                  bool accumulate, float* c, int64_t ldc) {
#if defined(__x86_64__)
  if (kHasAvx512) {
    return product_avx512(m, n, k, alpha, a, a_row_stride, a_col_stride, b, ldb, accumulate, c,
                          ldc);
  }
#endif
  blas_product(cblas_sgemm, m, n, k, alpha, a, a_row_stride, a_col_stride, b, ldb, accumulate, c,
               ldc);
}

void tile_product(int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                  int64_t a_row_stride, int64_t a_col_stride, const double* b, int64_t ldb,
                  bool accumulate, double* c, int64_t ldc) {
  blas_product(cblas_dgemm, m, n, k, alpha, a, a_row_stride, a_col_stride, b, ldb, accumulate, c,
               ldc);
}

// exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in
// two for an exact reduction), exp(r) by its Taylor series to r^7 (error below 1e-8 there).
// Below -87.3 (where 2^n would leave the normal range) the result is 0, as for -inf.
namespace {

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2High = 0.693359375f, kLn2Low = -2.12194440e-4f;
constexpr float kExpFloor = -87.3f;
constexpr float kTaylor[8] = {1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f,
                              1.0f / 6.0f,    0.5f,          1.0f,          1.0f};

float exp_shifted_portable(float* row, int64_t count, float shift) {
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float sum = 0.0f;
  for (int64_t j = 0; j < count; ++j) {
    const float x = row[j] - shift;
    const float clamped = x < kExpFloor ? kExpFloor : x;
    const float n = (clamped * kLog2e + kRoundMagic) - kRoundMagic;
    const float r = (clamped - n * kLn2High) - n * kLn2Low;
    float p = kTaylor[0];
    for (int i = 1; i < 8; ++i) p = p * r + kTaylor[i];
    const int32_t exponent_bits = (int32_t(n) + 127) << 23;
    float two_to_n;
    std::memcpy(&two_to_n, &exponent_bits, sizeof two_to_n);
    row[j] = x < kExpFloor ? 0.0f : p * two_to_n;
    sum += row[j];
  }
  return sum;
}

float row_max_portable(const float* row, int64_t count) {
  float result = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < count; ++j) result = row[j] > result ? row[j] : result;
  return result;
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) __mmask16 first_lanes(int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << count) - 1);
}

// The same polynomial 16 lanes at a time, 2^n applied by scalef.
__attribute__((target("avx512f"))) float exp_shifted_avx512(float* row, int64_t count,
                                                            float shift) {
  const __m512 shift_vector = _mm512_set1_ps(shift), floor = _mm512_set1_ps(kExpFloor);
  __m512 total = _mm512_setzero_ps();
  for (int64_t j = 0; j < count; j += 16) {
    const __mmask16 lanes = first_lanes(count - j);
    const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, row + j), shift_vector);
    const __mmask16 kept = _mm512_mask_cmp_ps_mask(lanes, x, floor, _CMP_GE_OQ);
    const __m512 clamped = _mm512_max_ps(x, floor);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(clamped, _mm512_set1_ps(kLog2e)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2High), clamped);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Low), r);
    __m512 p = _mm512_set1_ps(kTaylor[0]);
#pragma GCC unroll 8
    for (int i = 1; i < 8; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kTaylor[i]));
    const __m512 value = _mm512_maskz_mov_ps(kept, _mm512_scalef_ps(p, n));
    _mm512_mask_storeu_ps(row + j, lanes, value);
    total = _mm512_add_ps(total, value);
  }
  return _mm512_reduce_add_ps(total);
}

__attribute__((target("avx512f"))) float row_max_avx512(const float* row, int64_t count) {
  const __m512 minus_infinity = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 result = minus_infinity;
  for (int64_t j = 0; j < count; j += 16) {
    result = _mm512_max_ps(result,
                           _mm512_mask_loadu_ps(minus_infinity, first_lanes(count - j), row + j));
  }
  return _mm512_reduce_max_ps(result);
}
#endif

}  // namespace

float exp_shifted(float* row, int64_t count, float shift) {
#if defined(__x86_64__)
  if (kHasAvx512) return exp_shifted_avx512(row, count, shift);
#endif
  return exp_shifted_portable(row, count, shift);
}

float row_max(const float* row, int64_t count) {
#if defined(__x86_64__)
  if (kHasAvx512) return row_max_avx512(row, count);
#endif
  return row_max_portable(row, count);
}

double row_max(const double* row, int64_t count) {
  double result = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < count; ++j) result = std::max(result, row[j]);
  return result;
}

void scale_row(float* row, int64_t count, float factor) {
#pragma omp simd
  for (int64_t j = 0; j < count; ++j) row[j] *= factor;
}

void scale_row(double* row, int64_t count, double factor) {
  for (int64_t j = 0; j < count; ++j) row[j] *= factor;
}

double exp_shifted(double* row, int64_t count, double shift) {
  double sum = 0.0;
  for (int64_t j = 0; j < count; ++j) {
    row[j] = std::exp(row[j] - shift);  // exp(-inf) is 0
    sum += row[j];
  }
  return sum;
}

Tensor transposed_keys_workspace(int64_t batch, int64_t S, int64_t width, DType compute_dtype) {
  const int64_t tiles = (S + kKeyTile - 1) / kKeyTile;
  return empty({batch, tiles, width, kKeyTile}, {.dtype = compute_dtype, .tag = MemoryTag::other});
}

}  // namespace zt::cpu::attention_tiles
