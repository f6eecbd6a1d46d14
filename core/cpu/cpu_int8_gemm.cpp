// The portable int8 GEMM and the choice of path (core/cpu/cpu_int8_gemm.h).
#include "core/cpu/cpu_int8_gemm.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/cpu/cpu_gelu_tanh.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

void check_int8_gemm_args(const Int8GemmArgs& args) {
  const int64_t out_stride = args.rescale ? args.rescale->ldy : args.ldc;
  if (args.m < 0 || args.n < 0 || args.k < 0 || args.lda < args.k || args.ldb < args.k ||
      out_stride < args.n) {
    throw std::invalid_argument("int8_gemm: bad shape m=" + std::to_string(args.m) +
                                " n=" + std::to_string(args.n) + " k=" + std::to_string(args.k));
  }
  if (!args.b && !args.b_packed) throw std::invalid_argument("int8_gemm: no B (b or b_packed)");
  if (args.k > kInt8GemmMaxK) {
    throw std::invalid_argument("int8_gemm: k=" + std::to_string(args.k) +
                                " exceeds the int32 accumulator's bound " +
                                std::to_string(kInt8GemmMaxK));
  }
}

// B held packed only: each column of B unpacked once for the whole block of rows, then
// multiplied with every row of it.
void portable_rows_packed(const Int8GemmArgs& args, int64_t row_begin, int64_t row_end) {
  thread_local std::vector<int32_t> block_sums;  // [rows of the block, n]
  thread_local std::vector<int8_t> column;       // one column of B^T: B[j, :]
  const int64_t rows = row_end - row_begin;
  block_sums.resize(size_t(rows * args.n));
  column.resize(size_t(args.k));
  for (int64_t j = 0; j < args.n; ++j) {
    for (int64_t p = 0; p < args.k; ++p)
      column[size_t(p)] = int8_gemm_packed_b_at(args.b_packed, args.k, j, p);
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* a_row = args.a + (row_begin + r) * args.lda;
      int32_t sum = 0;
      for (int64_t p = 0; p < args.k; ++p) sum += int32_t(a_row[p]) * int32_t(column[size_t(p)]);
      block_sums[size_t(r * args.n + j)] = sum;
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* sums = block_sums.data() + r * args.n;
    if (args.rescale) {
      int8_gemm_rescale_row(*args.rescale, row_begin + r, 0, args.n, sums);
    } else {
      std::copy(sums, sums + args.n, args.c + (row_begin + r) * args.ldc);
    }
  }
}

void portable_rows(const Int8GemmArgs& args, int64_t row_begin, int64_t row_end) {
  if (!args.b) return portable_rows_packed(args, row_begin, row_end);
  thread_local std::vector<int32_t> row_sums;  // one row of C, when the epilogue takes it
  if (args.rescale) row_sums.resize(size_t(args.n));
  for (int64_t i = row_begin; i < row_end; ++i) {
    const uint8_t* a_row = args.a + i * args.lda;
    int32_t* c_row = args.rescale ? row_sums.data() : args.c + i * args.ldc;
    for (int64_t j = 0; j < args.n; ++j) {
      const int8_t* b_row = args.b + j * args.ldb;
      int32_t sum = 0;
      for (int64_t p = 0; p < args.k; ++p) sum += int32_t(a_row[p]) * int32_t(b_row[p]);
      c_row[j] = sum;
    }
    if (args.rescale) int8_gemm_rescale_row(*args.rescale, i, 0, args.n, c_row);
  }
}

}  // namespace

void int8_gemm_rescale_row(const Int8GemmRescale& rescale, int64_t i, int64_t j, int64_t count,
                           const int32_t* sums) {
  const uint32_t row_zero = uint32_t(rescale.row_zeros[i]);
  const float row_scale = rescale.row_scales[i];
  const float row_sum = rescale.col_zeros ? rescale.row_sums[i] : 0.0f;
  float* y = rescale.y + i * rescale.ldy + j;
  for (int64_t c = 0; c < count; ++c) {
    const int32_t centred =
        int32_t(uint32_t(sums[c]) - row_zero * uint32_t(rescale.col_sums[j + c]));
    float value = float(centred);
    if (rescale.col_zeros) value -= row_sum * rescale.col_zeros[j + c];
    value *= rescale.col_scales ? row_scale * rescale.col_scales[j + c] : row_scale;
    y[c] = rescale.bias ? value + rescale.bias[j + c] : value;
  }
  if (rescale.gelu_tanh) gelu_tanh_forward_f32(y, y, count);
}

void int8_gemm_portable(const Int8GemmArgs& args) {
  check_int8_gemm_args(args);
  parallel_for(0, args.m, 4, [&](int64_t row_begin, int64_t row_end) {
    portable_rows(args, row_begin, row_end);
  });
}

void int8_gemm_serial(const Int8GemmArgs& args) {
  check_int8_gemm_args(args);
  if (int8_gemm_has_vnni()) {
    int8_gemm_vnni_serial(args);
  } else {
    portable_rows(args, 0, args.m);
  }
}

void int8_gemm(const Int8GemmArgs& args) {
  check_int8_gemm_args(args);
  if (int8_gemm_has_vnni()) {
    int8_gemm_vnni(args);
  } else {
    int8_gemm_portable(args);
  }
}

}  // namespace zt::cpu
