// CpuBackend::gemm: row-major C = alpha * op(A) @ op(B) + beta * C through OpenBLAS.
// f32/f64 call cblas_sgemm/cblas_dgemm directly on the caller's strided matrices; f16/bf16 are
// widened to f32 scratch, multiplied by sgemm and rounded back. Debian's OpenBLAS 0.3.21 has no
// cblas_?gemm_batch, so a batch is a loop: large products are threaded inside OpenBLAS, small
// ones (which OpenBLAS computes on the calling thread anyway) run in parallel over the batch.
// Either way each matrix is computed the same way whatever the thread count.
#include <cblas.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

// OpenBLAS runs a product with m*n*k at or below this on the calling thread (interface/gemm.c:
// SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD), so such calls may safely run concurrently.
constexpr double kSingleThreadedGemmWork = 65536.0 * 4.0;

// BLAS rejects a leading dimension below the stored row length even when the matrix has a
// single row, where the stride is meaningless; give it the smallest legal value then.
int64_t legal_leading_dim(int64_t leading_dim, int64_t stored_rows, int64_t stored_cols) {
  int64_t minimum = std::max<int64_t>(1, stored_cols);
  if (stored_rows <= 1) return std::max(leading_dim, minimum);
  return leading_dim;
}

CBLAS_TRANSPOSE blas_transpose(bool transpose) {
  return transpose ? CblasTrans : CblasNoTrans;
}

void blas_gemm(const GemmArgs& args, const float* a, int64_t lda, const float* b, int64_t ldb,
               float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, blas_transpose(args.transpose_a), blas_transpose(args.transpose_b),
              blasint(args.m), blasint(args.n), blasint(args.k), float(args.alpha), a, blasint(lda),
              b, blasint(ldb), float(args.beta), c, blasint(ldc));
}

void blas_gemm(const GemmArgs& args, const double* a, int64_t lda, const double* b, int64_t ldb,
               double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, blas_transpose(args.transpose_a), blas_transpose(args.transpose_b),
              blasint(args.m), blasint(args.n), blasint(args.k), args.alpha, a, blasint(lda), b,
              blasint(ldb), args.beta, c, blasint(ldc));
}

// One matrix product of the batch, for f32/f64 storage.
template <typename T>
void gemm_one(const GemmArgs& args, int64_t index) {
  const T* a = static_cast<const T*>(args.a) + index * args.batch_stride_a;
  const T* b = static_cast<const T*>(args.b) + index * args.batch_stride_b;
  T* c = static_cast<T*>(args.c) + index * args.batch_stride_c;
  int64_t lda = legal_leading_dim(args.lda, args.transpose_a ? args.k : args.m,
                                  args.transpose_a ? args.m : args.k);
  int64_t ldb = legal_leading_dim(args.ldb, args.transpose_b ? args.n : args.k,
                                  args.transpose_b ? args.k : args.n);
  int64_t ldc = legal_leading_dim(args.ldc, args.m, args.n);
  blas_gemm(args, a, lda, b, ldb, c, ldc);
}

// Copies a strided rows x cols matrix of 16-bit values into a dense f32 buffer.
template <typename Half>
void widen_matrix(const Half* source, int64_t rows, int64_t cols, int64_t leading_dim,
                  std::vector<float>& dense) {
  dense.resize(size_t(rows * cols));
  for (int64_t row = 0; row < rows; ++row) {
    const Half* source_row = source + row * leading_dim;
    float* dense_row = dense.data() + row * cols;
    for (int64_t col = 0; col < cols; ++col) dense_row[col] = float(source_row[col]);
  }
}

// One matrix product of the batch for f16/bf16: widen, sgemm, round back.
template <typename Half>
void gemm_one_half(const GemmArgs& args, int64_t index) {
  const Half* a = static_cast<const Half*>(args.a) + index * args.batch_stride_a;
  const Half* b = static_cast<const Half*>(args.b) + index * args.batch_stride_b;
  Half* c = static_cast<Half*>(args.c) + index * args.batch_stride_c;
  int64_t a_rows = args.transpose_a ? args.k : args.m, a_cols = args.transpose_a ? args.m : args.k;
  int64_t b_rows = args.transpose_b ? args.n : args.k, b_cols = args.transpose_b ? args.k : args.n;
  std::vector<float> dense_a, dense_b, dense_c(size_t(args.m * args.n), 0.0f);
  widen_matrix(a, a_rows, a_cols, args.lda, dense_a);
  widen_matrix(b, b_rows, b_cols, args.ldb, dense_b);
  if (args.beta != 0.0) widen_matrix(c, args.m, args.n, args.ldc, dense_c);
  blas_gemm(args, dense_a.data(), std::max<int64_t>(1, a_cols), dense_b.data(),
            std::max<int64_t>(1, b_cols), dense_c.data(), std::max<int64_t>(1, args.n));
  for (int64_t row = 0; row < args.m; ++row) {
    for (int64_t col = 0; col < args.n; ++col) {
      c[row * args.ldc + col] = Half(dense_c[size_t(row * args.n + col)]);
    }
  }
}

// An empty inner dimension leaves C = beta * C; done here rather than trusting every BLAS
// to treat k = 0 (with beta = 0 meaning "overwrite", even NaN) the same way.
template <typename T>
void scale_output(const GemmArgs& args) {
  for (int64_t index = 0; index < args.batch; ++index) {
    T* c = static_cast<T*>(args.c) + index * args.batch_stride_c;
    for (int64_t row = 0; row < args.m; ++row) {
      for (int64_t col = 0; col < args.n; ++col) {
        T& value = c[row * args.ldc + col];
        value = args.beta == 0.0 ? T(0.0f) : T(compute_type<T>(args.beta) * compute_type<T>(value));
      }
    }
  }
}

}  // namespace

void CpuBackend::gemm(const GemmArgs& args) {
  if (args.m <= 0 || args.n <= 0 || args.batch <= 0) return;
  if (args.k <= 0) {
    dispatch_floating(args.dtype, "gemm", [&]<typename T>() { scale_output<T>(args); });
    return;
  }
  double work_per_matrix = double(args.m) * double(args.n) * double(args.k);
  // Large products are threaded inside OpenBLAS; small ones are threaded over the batch.
  int64_t matrices_per_chunk = work_per_matrix <= kSingleThreadedGemmWork ? 1 : args.batch;
  dispatch_floating(args.dtype, "gemm", [&]<typename T>() {
    parallel_for(0, args.batch, matrices_per_chunk, [&](int64_t first, int64_t last) {
      for (int64_t index = first; index < last; ++index) {
        if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
          gemm_one<T>(args, index);
        } else {
          gemm_one_half<T>(args, index);
        }
      }
    });
  });
}

}  // namespace zt::cpu
