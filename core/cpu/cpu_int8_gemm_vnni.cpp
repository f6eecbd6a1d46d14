// The AVX-512 VNNI int8 GEMM (core/cpu/cpu_int8_gemm.h), built with -mavx512vnni and chosen at
// run time. B is packed a panel of 64 output columns at a time into [k/4][64][4] bytes (per
// call, or once by the caller: int8_gemm_pack_b), so one 64-byte load holds 4 k-values of 16
// columns, the operand vpdpbusd multiplies with 4 bytes of an A row broadcast to every lane; a
// 6 x 64 tile of C stays in 24 registers across all of k.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/cpu/cpu_gelu_tanh.h"
#include "core/cpu/cpu_int8_gemm.h"
#include "core/parallel.h"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#include <immintrin.h>
#define ZT_HAVE_VNNI_BUILD 1
#endif

namespace zt::cpu {

namespace {

constexpr int64_t kPanelCols = 64;  // four zmm registers of int32

int64_t quad_count(int64_t k) {
  return (k + 3) / 4;
}

// Columns [col_begin, col_begin + 64) of B^T as [k4][64][4] bytes, zeros past n and past k.
void pack_panel(const int8_t* b, int64_t ldb, int64_t n, int64_t k, int64_t col_begin,
                int8_t* panel) {
  int64_t k4_count = quad_count(k);
  std::memset(panel, 0, size_t(k4_count * kPanelCols * 4));
  int64_t cols = std::min(kPanelCols, n - col_begin);
  int64_t full_k4 = k / 4;
  for (int64_t col = 0; col < cols; ++col) {
    const int8_t* b_row = b + (col_begin + col) * ldb;
    for (int64_t k4 = 0; k4 < full_k4; ++k4)
      std::memcpy(panel + (k4 * kPanelCols + col) * 4, b_row + k4 * 4, 4);
    if (full_k4 < k4_count) {  // the last, partial quad
      std::memcpy(panel + (full_k4 * kPanelCols + col) * 4, b_row + full_k4 * 4,
                  size_t(k - full_k4 * 4));
    }
  }
}

}  // namespace

int64_t int8_gemm_packed_b_bytes(int64_t n, int64_t k) {
  return (n + kPanelCols - 1) / kPanelCols * quad_count(k) * kPanelCols * 4;
}

void int8_gemm_pack_b(const int8_t* b, int64_t ldb, int64_t n, int64_t k, int8_t* packed) {
  int64_t panel_bytes = quad_count(k) * kPanelCols * 4;
  for (int64_t col_begin = 0; col_begin < n; col_begin += kPanelCols)
    pack_panel(b, ldb, n, k, col_begin, packed + col_begin / kPanelCols * panel_bytes);
}

void int8_gemm_unpack_b(const int8_t* packed, int64_t n, int64_t k, int8_t* b, int64_t ldb) {
  int64_t panel_bytes = quad_count(k) * kPanelCols * 4;
  for (int64_t col = 0; col < n; ++col) {
    const int8_t* panel = packed + col / kPanelCols * panel_bytes + col % kPanelCols * 4;
    int8_t* b_row = b + col * ldb;
    for (int64_t k4 = 0; k4 * 4 < k; ++k4)
      std::memcpy(b_row + k4 * 4, panel + k4 * kPanelCols * 4,
                  size_t(std::min<int64_t>(4, k - k4 * 4)));
  }
}

#ifdef ZT_HAVE_VNNI_BUILD

namespace {

constexpr int64_t kTileRows = 6;
constexpr int64_t kRowBlock = 96;  // rows of A per task: its rows stay in L2 across a panel

// Four bytes of an A row from k4 * 4 on, zeros past k (the last group may be partial).
inline int32_t load_a_quad(const uint8_t* a_row, int64_t k4, int64_t k) {
  int32_t quad = 0;
  int64_t k_begin = k4 * 4;
  std::memcpy(&quad, a_row + k_begin, size_t(std::min<int64_t>(4, k - k_begin)));
  return quad;
}

// Four bytes of an A row at quad k4: whole quads straight from memory, the last one (partial
// when k is not a multiple of 4) through load_a_quad.
inline __m512i broadcast_quad(const uint8_t* a_row, int64_t k4, int64_t full_k4, int64_t k) {
  int32_t quad;
  if (k4 < full_k4) {
    std::memcpy(&quad, a_row + k4 * 4, 4);
  } else {
    quad = load_a_quad(a_row, k4, k);
  }
  return _mm512_set1_epi32(quad);
}

// Writes 64 int32 sums of one row of C (fewer at the last panel of a row).
inline void store_row(int32_t* c_row, int64_t cols, __m512i s0, __m512i s1, __m512i s2,
                      __m512i s3) {
  alignas(64) int32_t staged[kPanelCols];
  int32_t* out = cols == kPanelCols ? c_row : staged;
  _mm512_storeu_si512(out, s0);
  _mm512_storeu_si512(out + 16, s1);
  _mm512_storeu_si512(out + 32, s2);
  _mm512_storeu_si512(out + 48, s3);
  if (out == staged) std::memcpy(c_row, staged, size_t(cols) * sizeof(int32_t));
}

// The epilogue (Int8GemmRescale) on 64 sums of row i from column j on (fewer at the last
// panel), in registers: the int32 C never reaches memory.
inline void store_rescaled_row(const Int8GemmRescale& rescale, int64_t i, int64_t j, int64_t cols,
                               const __m512i (&sums)[4]) {
  const __m512 row_scale = _mm512_set1_ps(rescale.row_scales[i]);
  const __m512i row_zero = _mm512_set1_epi32(rescale.row_zeros[i]);
  const __m512 row_sum = _mm512_set1_ps(rescale.col_zeros ? rescale.row_sums[i] : 0.0f);
  alignas(64) float staged[kPanelCols];
  float* y = rescale.y + i * rescale.ldy + j;
  for (int64_t q = 0; q < 4; ++q) {
    const int64_t left = std::clamp<int64_t>(cols - q * 16, 0, 16);
    const __mmask16 lanes = __mmask16((uint32_t(1) << left) - 1);
    const int64_t col = j + q * 16;
    const __m512i col_sums = _mm512_maskz_loadu_epi32(lanes, rescale.col_sums + col);
    // The zero-masked form: GCC 12 warns on the plain one's undefined pass-through operand.
    __m512 value = _mm512_maskz_cvtepi32_ps(
        __mmask16(0xFFFF), _mm512_sub_epi32(sums[q], _mm512_mullo_epi32(row_zero, col_sums)));
    if (rescale.col_zeros)
      value =
          _mm512_fnmadd_ps(row_sum, _mm512_maskz_loadu_ps(lanes, rescale.col_zeros + col), value);
    const __m512 scale =
        rescale.col_scales
            ? _mm512_mul_ps(row_scale, _mm512_maskz_loadu_ps(lanes, rescale.col_scales + col))
            : row_scale;
    value = rescale.bias
                ? _mm512_fmadd_ps(scale, value, _mm512_maskz_loadu_ps(lanes, rescale.bias + col))
                : _mm512_mul_ps(scale, value);
    if (rescale.gelu_tanh) {
      _mm512_store_ps(staged + q * 16, value);
    } else {
      _mm512_mask_storeu_ps(y + q * 16, lanes, value);
    }
  }
  if (rescale.gelu_tanh) gelu_tanh_forward_f32(staged, y, cols);
}

inline void store_sums(const Int8GemmArgs& args, int64_t i, int64_t j, int64_t cols, __m512i s0,
                       __m512i s1, __m512i s2, __m512i s3) {
  if (args.rescale) {
    const __m512i sums[4] = {s0, s1, s2, s3};
    store_rescaled_row(*args.rescale, i, j, cols, sums);
  } else {
    store_row(args.c + i * args.ldc + j, cols, s0, s1, s2, s3);
  }
}

// The accumulators are named variables, not an array: GCC keeps them in registers only so.
#define ZT_ROW_ACCUMULATORS(r) \
  __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = c##r##0, c##r##2 = c##r##0, c##r##3 = c##r##0;
#define ZT_ROW_STEP(r)                                                                    \
  {                                                                                       \
    __m512i a = broadcast_quad(args.a + (row_begin + r) * args.lda, k4, full_k4, args.k); \
    c##r##0 = _mm512_dpbusd_epi32(c##r##0, a, b0);                                        \
    c##r##1 = _mm512_dpbusd_epi32(c##r##1, a, b1);                                        \
    c##r##2 = _mm512_dpbusd_epi32(c##r##2, a, b2);                                        \
    c##r##3 = _mm512_dpbusd_epi32(c##r##3, a, b3);                                        \
  }
#define ZT_ROW_STORE(r) \
  store_sums(args, row_begin + r, col_begin, cols, c##r##0, c##r##1, c##r##2, c##r##3);

// Rows 6 (the full tile) or 1 (the rows left over) of C against one packed panel.
template <int Rows>
void tile(const Int8GemmArgs& args, int64_t row_begin, int64_t col_begin, const int8_t* panel,
          int64_t k4_count) {
  static_assert(Rows == 6 || Rows == 1);
  int64_t full_k4 = args.k / 4;
  int64_t cols = std::min(kPanelCols, args.n - col_begin);
  ZT_ROW_ACCUMULATORS(0)
  [[maybe_unused]] __m512i c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33, c40, c41,
      c42, c43, c50, c51, c52, c53;
  if constexpr (Rows == 6) {
    c10 = c11 = c12 = c13 = c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = c00;
    c40 = c41 = c42 = c43 = c50 = c51 = c52 = c53 = c00;
  }
  for (int64_t k4 = 0; k4 < k4_count; ++k4) {
    const int8_t* quad_row = panel + k4 * kPanelCols * 4;
    __m512i b0 = _mm512_loadu_si512(quad_row);
    __m512i b1 = _mm512_loadu_si512(quad_row + 64);
    __m512i b2 = _mm512_loadu_si512(quad_row + 128);
    __m512i b3 = _mm512_loadu_si512(quad_row + 192);
    ZT_ROW_STEP(0)
    if constexpr (Rows == 6) {
      ZT_ROW_STEP(1) ZT_ROW_STEP(2) ZT_ROW_STEP(3) ZT_ROW_STEP(4) ZT_ROW_STEP(5)
    }
  }
  ZT_ROW_STORE(0)
  if constexpr (Rows == 6) {
    ZT_ROW_STORE(1) ZT_ROW_STORE(2) ZT_ROW_STORE(3) ZT_ROW_STORE(4) ZT_ROW_STORE(5)
  }
}

#undef ZT_ROW_ACCUMULATORS
#undef ZT_ROW_STEP
#undef ZT_ROW_STORE

void rows_of_panel(const Int8GemmArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin,
                   const int8_t* panel, int64_t k4_count) {
  int64_t row = row_begin;
  for (; row + kTileRows <= row_end; row += kTileRows)
    tile<kTileRows>(args, row, col_begin, panel, k4_count);
  for (; row < row_end; ++row) tile<1>(args, row, col_begin, panel, k4_count);
}

// The panel starting at col_begin: the caller's pre-packed one, else packed into `scratch`.
const int8_t* panel_at(const Int8GemmArgs& args, int64_t col_begin, std::vector<int8_t>& scratch) {
  int64_t panel_bytes = quad_count(args.k) * kPanelCols * 4;
  if (args.b_packed) return args.b_packed + col_begin / kPanelCols * panel_bytes;
  scratch.resize(size_t(panel_bytes));
  pack_panel(args.b, args.ldb, args.n, args.k, col_begin, scratch.data());
  return scratch.data();
}

}  // namespace

bool int8_gemm_has_vnni() {
  static const bool has =
      __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  return has;
}

void int8_gemm_vnni(const Int8GemmArgs& args) {
  if (args.m == 0 || args.n == 0) return;
  int64_t k4_count = quad_count(args.k);
  int64_t panels = (args.n + kPanelCols - 1) / kPanelCols;
  int64_t row_blocks = (args.m + kRowBlock - 1) / kRowBlock;
  // One task per (panel, block of rows); without pre-packed panels a task packs its own (n * k
  // bytes over all tasks of a row block: small next to the m * n * k products it feeds).
  parallel_for(0, panels * row_blocks, 1, [&](int64_t task_begin, int64_t task_end) {
    thread_local std::vector<int8_t> scratch;
    for (int64_t task = task_begin; task < task_end; ++task) {
      int64_t col_begin = (task % panels) * kPanelCols;
      int64_t row_begin = (task / panels) * kRowBlock;
      const int8_t* panel = panel_at(args, col_begin, scratch);
      rows_of_panel(args, row_begin, std::min(args.m, row_begin + kRowBlock), col_begin, panel,
                    k4_count);
    }
  });
}

void int8_gemm_vnni_serial(const Int8GemmArgs& args) {
  if (args.m == 0 || args.n == 0) return;
  int64_t k4_count = quad_count(args.k);
  thread_local std::vector<int8_t> scratch;
  // Each panel packed once (unless pre-packed), then every row against it.
  for (int64_t col_begin = 0; col_begin < args.n; col_begin += kPanelCols)
    rows_of_panel(args, 0, args.m, col_begin, panel_at(args, col_begin, scratch), k4_count);
}

#else  // built without VNNI (another architecture): the portable path only

bool int8_gemm_has_vnni() {
  return false;
}

void int8_gemm_vnni(const Int8GemmArgs&) {
  throw std::logic_error("int8_gemm_vnni: this build has no AVX-512 VNNI path");
}

void int8_gemm_vnni_serial(const Int8GemmArgs&) {
  throw std::logic_error("int8_gemm_vnni_serial: this build has no AVX-512 VNNI path");
}

#endif

}  // namespace zt::cpu
