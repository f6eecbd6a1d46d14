// AVX-512 paths of the f32 block-sparse kernels at blocks of 16 (DeepSpeed's default): the
// per-call transpose of keys and values into [blocks, width, 16], score products that read
// those blocks in place, the packing fallback, and the backward's per-row dot products. Scalar
// transposes and a memmove call per 16 values took a third of the sliding-window layouts' time,
// whose rows have only 4-5 blocks of products to pay for them.
#include <algorithm>
#include <span>

#include "core/cpu/cpu_block_sparse_tiles.h"

#if defined(__x86_64__)
// GCC 12's unpack and shuffle intrinsics pass _mm512_undefined_ps() as their masked-off source,
// which -Wuninitialized reports once inlined; the values are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace zt::cpu::block_sparse_tiles {

#if defined(__x86_64__)
namespace {

const bool kHasAvx512 = __builtin_cpu_supports("avx512f");

// 16 rows of 16 floats (rows `stride` apart) transposed into out[i * 16 + j] = in[j][i]:
// four rounds of pairwise interleaves, 64 shuffles for 256 values.
__attribute__((target("avx512f"))) void transpose_16x16(const float* in, int64_t stride,
                                                        float* out) {
  __m512 r[16], t[16];
  // Fully unrolled so that r and t stay in registers (the library's -O2 kept the loops and
  // spilled both arrays to the stack, a store and a load per value).
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(in + i * stride);
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 16; i += 4) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512d a = _mm512_castps_pd(t[i + h]), b = _mm512_castps_pd(t[i + 2 + h]);
      r[i + h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
      r[i + 2 + h] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    }
  }
  // r[i .. i + 4) now hold four columns of rows i .. i + 4 per 128-bit lane; two rounds of
  // 128-bit shuffles gather the four lanes of each column.
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xDD);
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xDD);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD);
    r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
    r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xDD);
  }
  // Register k holds column k with the middle two of each four swapped (the order of the
  // 64-bit interleave).
  constexpr int kColumn[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};
#pragma GCC unroll 16
  for (int k = 0; k < 16; ++k) _mm512_storeu_ps(out + kColumn[k] * 16, r[k]);
}

__attribute__((target("avx512f"))) void pack16(std::span<const float* const> blocks, int64_t width,
                                               int64_t ld, float* packed) {
  for (size_t j = 0; j < blocks.size(); ++j) {
    const float* source = blocks[j];
    float* target = packed + int64_t(j) * 16;
    for (int64_t e = 0; e < width; ++e) {
      _mm512_storeu_ps(target + e * ld, _mm512_loadu_ps(source + e * 16));
    }
  }
}

// The register tiles of the products below: ROWS x VECS vectors of 16 sums, zeroed, and
// sum[r][v] += a[r * lda] * b_vectors[v] (one column of A against one row of B).
template <int ROWS, int VECS>
__attribute__((target("avx512f"), always_inline)) inline void zero_sums(__m512 (&sum)[ROWS][VECS]) {
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < VECS; ++v) sum[r][v] = _mm512_setzero_ps();
  }
}
template <int ROWS, int VECS>
__attribute__((target("avx512f"), always_inline)) inline void add_outer_product(
    __m512 (&sum)[ROWS][VECS], const float* a, int64_t lda, const __m512 (&b_vectors)[VECS]) {
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
    const __m512 a_value = _mm512_set1_ps(a[r * lda]);
#pragma GCC unroll 4
    for (int v = 0; v < VECS; ++v) sum[r][v] = _mm512_fmadd_ps(a_value, b_vectors[v], sum[r][v]);
  }
}

// ROWS rows of scores against VECS key blocks of 16 (each [k, 16] in the transposed plane, at
// blocks[v]): the register-blocked product of cpu_attention_tiles.cpp with one B pointer per
// vector, so the blocks are read where they lie instead of packed side by side first.
template <int ROWS, int VECS>
__attribute__((target("avx512f"))) void scores_block(int64_t k, float alpha, const float* a,
                                                     int64_t lda, const float* const* blocks,
                                                     float* c, int64_t ldc) {
  __m512 sum[ROWS][VECS];
  zero_sums(sum);
  for (int64_t p = 0; p < k; ++p) {
    __m512 b_vectors[VECS];
#pragma GCC unroll 4
    for (int v = 0; v < VECS; ++v) b_vectors[v] = _mm512_loadu_ps(blocks[v] + p * 16);
    add_outer_product(sum, a + p, lda, b_vectors);
  }
  const __m512 scale = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < VECS; ++v)
      _mm512_storeu_ps(c + r * ldc + 16 * v, _mm512_mul_ps(sum[r][v], scale));
  }
}

using ScoresBlock = void (*)(int64_t, float, const float*, int64_t, const float* const*, float*,
                             int64_t);
template <int VECS>
constexpr ScoresBlock kScoresOf[7] = {nullptr,
                                      scores_block<1, VECS>,
                                      scores_block<2, VECS>,
                                      scores_block<3, VECS>,
                                      scores_block<4, VECS>,
                                      scores_block<5, VECS>,
                                      scores_block<6, VECS>};
constexpr const ScoresBlock* kScores[5] = {nullptr, kScoresOf<1>, kScoresOf<2>, kScoresOf<3>,
                                           kScoresOf<4>};

// ROWS rows of C, VECS vectors from column j0, = alpha * A [ROWS, count * 16] times the 16
// rows of each key block blocks[j] ([16, ...], row stride ldb), summed in registers over all
// the blocks, then written (or added to C). One pass per chunk instead of one product per run
// of consecutive blocks: a window's run and its global block shared one output tile, loaded
// and stored twice.
template <int ROWS, int VECS>
__attribute__((target("avx512f"))) void rows_product_block(int64_t count, float alpha,
                                                           const float* a, int64_t lda,
                                                           const float* const* blocks, int64_t ldb,
                                                           int64_t j0, bool accumulate, float* c,
                                                           int64_t ldc, int64_t diagonal,
                                                           int diagonal_keys) {
  __m512 sum[ROWS][VECS];
  zero_sums(sum);
  for (int64_t j = 0; j < count; ++j) {
    const float* b = blocks[j] + j0;
    const float* a_block = a + j * 16;
    const int keys = j == diagonal ? diagonal_keys : 16;
    for (int p = 0; p < keys; ++p) {
      __m512 b_vectors[VECS];
#pragma GCC unroll 4
      for (int v = 0; v < VECS; ++v) b_vectors[v] = _mm512_loadu_ps(b + p * ldb + 16 * v);
      add_outer_product(sum, a_block + p, lda, b_vectors);
    }
  }
  const __m512 scale = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < VECS; ++v) {
      float* target = c + r * ldc + j0 + 16 * v;
      const __m512 value = _mm512_mul_ps(sum[r][v], scale);
      _mm512_storeu_ps(target, accumulate ? _mm512_add_ps(_mm512_loadu_ps(target), value) : value);
    }
  }
}

using RowsProductBlock = void (*)(int64_t, float, const float*, int64_t, const float* const*,
                                  int64_t, int64_t, bool, float*, int64_t, int64_t, int);
template <int VECS>
constexpr RowsProductBlock kRowsProductOf[7] = {nullptr,
                                                rows_product_block<1, VECS>,
                                                rows_product_block<2, VECS>,
                                                rows_product_block<3, VECS>,
                                                rows_product_block<4, VECS>,
                                                rows_product_block<5, VECS>,
                                                rows_product_block<6, VECS>};
constexpr const RowsProductBlock* kRowsProduct[5] = {nullptr, kRowsProductOf<1>, kRowsProductOf<2>,
                                                     kRowsProductOf<3>, kRowsProductOf<4>};

}  // namespace

bool block_rows_product_fast(int64_t rows, int64_t n, float alpha, const float* a, int64_t lda,
                             const float* block_rows, int64_t ldb, int64_t block,
                             std::span<const int64_t> chunk, bool accumulate, float* c, int64_t ldc,
                             int64_t diagonal) {
  constexpr size_t kMaxBlocks = 16;
  if (!kHasAvx512 || block != 16 || n % 16 != 0 || chunk.size() > kMaxBlocks) return false;
  const float* blocks[kMaxBlocks];
  for (size_t j = 0; j < chunk.size(); ++j) blocks[j] = block_rows + chunk[j] * 16 * ldb;
  const int64_t count = int64_t(chunk.size());
  for (int64_t j0 = 0; j0 < n; j0 += 64) {
    const int vecs = int(std::min<int64_t>(4, (n - j0) / 16));
    for (int64_t i0 = 0; i0 < rows; i0 += 6) {
      const int block_rows_now = int(std::min<int64_t>(6, rows - i0));
      // Rows i0 .. i0 + block_rows_now of the diagonal block see its keys up to the last of
      // them only.
      const int diagonal_keys = int(std::min<int64_t>(16, i0 + block_rows_now));
      kRowsProduct[vecs][block_rows_now](count, alpha, a + i0 * lda, lda, blocks, ldb, j0,
                                         accumulate, c + i0 * ldc, ldc, diagonal, diagonal_keys);
    }
  }
  return true;
}

bool block_scores_fast(int64_t rows, int64_t k, float alpha, const float* a, int64_t lda,
                       std::span<const float* const> blocks, int64_t block, float* c, int64_t ldc) {
  if (!kHasAvx512 || block != 16) return false;
  const int64_t count = int64_t(blocks.size());
  for (int64_t j0 = 0; j0 < count; j0 += 4) {
    const int vecs = int(std::min<int64_t>(4, count - j0));
    for (int64_t i0 = 0; i0 < rows; i0 += 6) {
      const int block_rows = int(std::min<int64_t>(6, rows - i0));
      kScores[vecs][block_rows](k, alpha, a + i0 * lda, lda, blocks.data() + j0,
                                c + i0 * ldc + j0 * 16, ldc);
    }
  }
  return true;
}

__attribute__((target("avx512f"))) void row_dots16(int64_t rows, int64_t width, const float* a,
                                                   int64_t lda, const float* b, int64_t ldb,
                                                   float* out) {
  for (int64_t i = 0; i < rows; ++i) {
    __m512 sum = _mm512_setzero_ps();
    for (int64_t d = 0; d < width; d += 16) {
      sum =
          _mm512_fmadd_ps(_mm512_loadu_ps(a + i * lda + d), _mm512_loadu_ps(b + i * ldb + d), sum);
    }
    out[i] = _mm512_reduce_add_ps(sum);
  }
}

bool row_dots_fast(int64_t rows, int64_t width, const float* a, int64_t lda, const float* b,
                   int64_t ldb, float* out) {
  if (!kHasAvx512 || width % 16 != 0) return false;
  row_dots16(rows, width, a, lda, b, ldb, out);
  return true;
}

__attribute__((target("avx512f"))) void stream_scaled_rows16(int64_t rows, int64_t n,
                                                             const float* source, int64_t lds,
                                                             const float* scales, float* target,
                                                             int64_t ldt) {
  for (int64_t i = 0; i < rows; ++i) {
    const __m512 scale = _mm512_set1_ps(scales != nullptr ? scales[i] : 1.0f);
    for (int64_t j = 0; j < n; j += 16) {
      _mm512_stream_ps(target + i * ldt + j,
                       _mm512_mul_ps(_mm512_loadu_ps(source + i * lds + j), scale));
    }
  }
}

void fence_streamed_rows() {
  _mm_sfence();
}

bool stream_scaled_rows_fast(int64_t rows, int64_t n, const float* source, int64_t lds,
                             const float* scales, float* target, int64_t ldt) {
  constexpr uintptr_t kLine = 64;
  if (!kHasAvx512 || n % 16 != 0 || reinterpret_cast<uintptr_t>(target) % kLine != 0 ||
      (ldt * int64_t(sizeof(float))) % int64_t(kLine) != 0)
    return false;
  stream_scaled_rows16(rows, n, source, lds, scales, target, ldt);
  return true;
}

bool transpose_rows_fast(const float* rows, int64_t T_len, int64_t width, int64_t block,
                         float* out) {
  if (!kHasAvx512 || block != 16 || width % 16 != 0) return false;
  for (int64_t first = 0; first < T_len; first += 16) {
    for (int64_t e = 0; e < width; e += 16) {
      transpose_16x16(rows + first * width + e, width, out + first * width + e * 16);
    }
  }
  return true;
}

bool pack_transposed_fast(std::span<const float* const> blocks, int64_t width, int64_t block,
                          int64_t ld, float* packed) {
  if (!kHasAvx512 || block != 16) return false;
  pack16(blocks, width, ld, packed);
  return true;
}
#else
bool block_scores_fast(int64_t, int64_t, float, const float*, int64_t,
                       std::span<const float* const>, int64_t, float*, int64_t) {
  return false;
}
bool transpose_rows_fast(const float*, int64_t, int64_t, int64_t, float*) {
  return false;
}
bool row_dots_fast(int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*) {
  return false;
}
bool stream_scaled_rows_fast(int64_t, int64_t, const float*, int64_t, const float*, float*,
                             int64_t) {
  return false;
}
void fence_streamed_rows() {}
bool pack_transposed_fast(std::span<const float* const>, int64_t, int64_t, int64_t, float*) {
  return false;
}
bool block_rows_product_fast(int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                             int64_t, std::span<const int64_t>, bool, float*, int64_t, int64_t) {
  return false;
}
#endif

}  // namespace zt::cpu::block_sparse_tiles
