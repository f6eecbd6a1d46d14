// The portable int8 GEMM and the choice of path (core/cpu/cpu_int8_gemm.h).
#include "core/cpu/cpu_int8_gemm.h"

#include <stdexcept>
#include <string>

#include "core/parallel.h"

namespace zt::cpu {

namespace {

void check_int8_gemm_args(const Int8GemmArgs& args) {
  if (args.m < 0 || args.n < 0 || args.k < 0 || args.lda < args.k || args.ldb < args.k ||
      args.ldc < args.n) {
    throw std::invalid_argument("int8_gemm: bad shape m=" + std::to_string(args.m) +
                                " n=" + std::to_string(args.n) + " k=" + std::to_string(args.k));
  }
  if (args.k > kInt8GemmMaxK) {
    throw std::invalid_argument("int8_gemm: k=" + std::to_string(args.k) +
                                " exceeds the int32 accumulator's bound " +
                                std::to_string(kInt8GemmMaxK));
  }
}

void portable_rows(const Int8GemmArgs& args, int64_t row_begin, int64_t row_end) {
  for (int64_t i = row_begin; i < row_end; ++i) {
    const uint8_t* a_row = args.a + i * args.lda;
    for (int64_t j = 0; j < args.n; ++j) {
      const int8_t* b_row = args.b + j * args.ldb;
      int32_t sum = 0;
      for (int64_t p = 0; p < args.k; ++p) sum += int32_t(a_row[p]) * int32_t(b_row[p]);
      args.c[i * args.ldc + j] = sum;
    }
  }
}

}  // namespace

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
