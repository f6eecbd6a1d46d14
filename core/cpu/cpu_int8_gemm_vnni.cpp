// The AVX-512 VNNI int8 GEMM (core/cpu/cpu_int8_gemm.h), built with -mavx512vnni and chosen at
// run time. B is packed a panel of 64 output columns at a time into [k/4][64][4] bytes, so one
// 64-byte load holds 4 k-values of 16 columns, the operand vpdpbusd multiplies with 4 bytes of
// an A row broadcast to every lane; a 6 x 64 tile of C stays in 24 registers across all of k.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/cpu/cpu_int8_gemm.h"
#include "core/parallel.h"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#include <immintrin.h>
#define ZT_HAVE_VNNI_BUILD 1
#endif

namespace zt::cpu {

#ifdef ZT_HAVE_VNNI_BUILD

namespace {

constexpr int64_t kPanelCols = 64;  // four zmm registers of int32
constexpr int64_t kTileRows = 6;
constexpr int64_t kRowBlock = 96;  // rows of A per task: its rows stay in L2 across a panel

// Columns [col_begin, col_begin + 64) of B^T as [k4][64][4] bytes, zeros past n and past k.
void pack_panel(const Int8GemmArgs& args, int64_t col_begin, int64_t k4_count, int8_t* panel) {
  std::memset(panel, 0, size_t(k4_count * kPanelCols * 4));
  int64_t cols = std::min(kPanelCols, args.n - col_begin);
  for (int64_t col = 0; col < cols; ++col) {
    const int8_t* b_row = args.b + (col_begin + col) * args.ldb;
    for (int64_t k4 = 0; k4 < k4_count; ++k4) {
      int64_t k_begin = k4 * 4;
      int64_t count = std::min<int64_t>(4, args.k - k_begin);
      std::memcpy(panel + (k4 * kPanelCols + col) * 4, b_row + k_begin, size_t(count));
    }
  }
}

// Four bytes of an A row from k4 * 4 on, zeros past k (the last group may be partial).
inline int32_t load_a_quad(const uint8_t* a_row, int64_t k4, int64_t k) {
  int32_t quad = 0;
  int64_t k_begin = k4 * 4;
  std::memcpy(&quad, a_row + k_begin, size_t(std::min<int64_t>(4, k - k_begin)));
  return quad;
}

template <int Rows>
void tile(const Int8GemmArgs& args, int64_t row_begin, int64_t col_begin, const int8_t* panel,
          int64_t k4_count) {
  __m512i acc[Rows][4];
  for (int r = 0; r < Rows; ++r)
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_si512();
  const uint8_t* a_rows[Rows];
  for (int r = 0; r < Rows; ++r) a_rows[r] = args.a + (row_begin + r) * args.lda;
  int64_t full_k4 = args.k / 4;  // whole quads read straight from A
  for (int64_t k4 = 0; k4 < k4_count; ++k4) {
    const int8_t* quad_row = panel + k4 * kPanelCols * 4;
    __m512i b0 = _mm512_loadu_si512(quad_row);
    __m512i b1 = _mm512_loadu_si512(quad_row + 64);
    __m512i b2 = _mm512_loadu_si512(quad_row + 128);
    __m512i b3 = _mm512_loadu_si512(quad_row + 192);
    for (int r = 0; r < Rows; ++r) {
      int32_t quad;
      if (k4 < full_k4) {
        std::memcpy(&quad, a_rows[r] + k4 * 4, 4);
      } else {
        quad = load_a_quad(a_rows[r], k4, args.k);
      }
      __m512i a = _mm512_set1_epi32(quad);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], a, b0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], a, b1);
      acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], a, b2);
      acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], a, b3);
    }
  }
  int64_t cols = std::min(kPanelCols, args.n - col_begin);
  for (int r = 0; r < Rows; ++r) {
    int32_t* c_row = args.c + (row_begin + r) * args.ldc + col_begin;
    if (cols == kPanelCols) {
      for (int j = 0; j < 4; ++j) _mm512_storeu_si512(c_row + 16 * j, acc[r][j]);
      continue;
    }
    alignas(64) int32_t staged[kPanelCols];
    for (int j = 0; j < 4; ++j) _mm512_store_si512(staged + 16 * j, acc[r][j]);
    std::memcpy(c_row, staged, size_t(cols) * sizeof(int32_t));
  }
}

void rows_of_panel(const Int8GemmArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin,
                   const int8_t* panel, int64_t k4_count) {
  int64_t row = row_begin;
  for (; row + kTileRows <= row_end; row += kTileRows)
    tile<kTileRows>(args, row, col_begin, panel, k4_count);
  switch (row_end - row) {
    case 5:
      tile<5>(args, row, col_begin, panel, k4_count);
      break;
    case 4:
      tile<4>(args, row, col_begin, panel, k4_count);
      break;
    case 3:
      tile<3>(args, row, col_begin, panel, k4_count);
      break;
    case 2:
      tile<2>(args, row, col_begin, panel, k4_count);
      break;
    case 1:
      tile<1>(args, row, col_begin, panel, k4_count);
      break;
    default:
      break;
  }
}

}  // namespace

bool int8_gemm_has_vnni() {
  static const bool has =
      __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  return has;
}

void int8_gemm_vnni(const Int8GemmArgs& args) {
  if (args.m == 0 || args.n == 0) return;
  int64_t k4_count = (args.k + 3) / 4;
  int64_t panels = (args.n + kPanelCols - 1) / kPanelCols;
  int64_t row_blocks = (args.m + kRowBlock - 1) / kRowBlock;
  // One task per (panel, block of rows); a task packs its own panel (n * k bytes over all
  // tasks of a row block: small next to the m * n * k products it feeds).
  parallel_for(0, panels * row_blocks, 1, [&](int64_t task_begin, int64_t task_end) {
    thread_local std::vector<int8_t> panel;
    panel.resize(size_t(k4_count * kPanelCols * 4));
    for (int64_t task = task_begin; task < task_end; ++task) {
      int64_t col_begin = (task % panels) * kPanelCols;
      int64_t row_begin = (task / panels) * kRowBlock;
      pack_panel(args, col_begin, k4_count, panel.data());
      rows_of_panel(args, row_begin, std::min(args.m, row_begin + kRowBlock), col_begin,
                    panel.data(), k4_count);
    }
  });
}

#else  // built without VNNI (another architecture): the portable path only

bool int8_gemm_has_vnni() {
  return false;
}

void int8_gemm_vnni(const Int8GemmArgs&) {
  throw std::logic_error("int8_gemm_vnni: this build has no AVX-512 VNNI path");
}

#endif

}  // namespace zt::cpu
