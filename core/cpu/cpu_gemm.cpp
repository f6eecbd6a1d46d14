// CpuBackend::gemm: row-major C = alpha * op(A) @ op(B) + beta * C through OpenBLAS.
// f32/f64 call cblas_sgemm/cblas_dgemm directly on the caller's strided matrices; f16/bf16 are
// widened to f32 scratch, multiplied by sgemm and rounded back. Debian's OpenBLAS 0.3.21 has no
// cblas_?gemm_batch, so a batch is a loop, in parallel over the matrices.
// Invariant: OpenBLAS is only ever called single-threaded. Its threaded driver cuts the inner
// dimension differently from the single-threaded one (for k between about 512 and 1024), so
// the same product rounded differently on 1 and 2 threads. Instead a large product is cut into
// column or row pieces whose number depends only on its size, computed in parallel by
// single-threaded calls; each element then sums over k the same way on any thread count.
#include <cblas.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

// Work (m*n*k) per piece of a cut product: large enough that OpenBLAS's packing stays a small
// share of each call.
constexpr double kGemmWorkPerPiece = double(1 << 22);
constexpr int64_t kMaxGemmPieces = 64;
constexpr int64_t kMinGemmPieceWidth = 32;
constexpr int64_t kGemmPieceAlignment = 64;

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

// C[1, n] = alpha * a[1, k] @ op(B) + beta * C as a matrix-vector product. OpenBLAS's sgemm
// copies all of B into its packed layout on every call, which for a single row (a decode step
// at batch 1) costs several times the product itself; sgemv streams B once, in place.
void blas_row_times_matrix(const GemmArgs& args, const float* a, int64_t lda, const float* b,
                           int64_t ldb, float* c) {
  // Row 0 of op(A): contiguous when A is stored as rows, one element per stored row otherwise.
  const blasint a_step = blasint(args.transpose_a ? lda : 1);
  // BLAS may compute 0 * C even when beta is 0, and C may hold uninitialised NaNs.
  if (args.beta == 0.0) std::fill(c, c + args.n, 0.0f);
  // B stored [n, k] (transpose_b): C = B a; stored [k, n]: C = B^T a.
  cblas_sgemv(CblasRowMajor, args.transpose_b ? CblasNoTrans : CblasTrans,
              blasint(args.transpose_b ? args.n : args.k),
              blasint(args.transpose_b ? args.k : args.n), float(args.alpha), b, blasint(ldb), a,
              a_step, float(args.beta), c, 1);
}

void blas_gemm(const GemmArgs& args, const float* a, int64_t lda, const float* b, int64_t ldb,
               float* c, int64_t ldc) {
  if (args.m == 1) return blas_row_times_matrix(args, a, lda, b, ldb, c);
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

// The part of one product that writes rows [row_begin, row_end) and columns
// [col_begin, col_end) of C, for f32/f64 storage.
template <typename T>
void gemm_piece(const GemmArgs& args, int64_t index, int64_t row_begin, int64_t row_end,
                int64_t col_begin, int64_t col_end) {
  int64_t lda = legal_leading_dim(args.lda, args.transpose_a ? args.k : args.m,
                                  args.transpose_a ? args.m : args.k);
  int64_t ldb = legal_leading_dim(args.ldb, args.transpose_b ? args.n : args.k,
                                  args.transpose_b ? args.k : args.n);
  int64_t ldc = legal_leading_dim(args.ldc, args.m, args.n);
  // Row i of op(A) starts at a + i*lda (stored rows) or a + i (stored columns); column j of
  // op(B) at b + j (stored columns) or b + j*ldb (stored rows).
  const T* a = static_cast<const T*>(args.a) + index * args.batch_stride_a +
               (args.transpose_a ? row_begin : row_begin * lda);
  const T* b = static_cast<const T*>(args.b) + index * args.batch_stride_b +
               (args.transpose_b ? col_begin * ldb : col_begin);
  T* c = static_cast<T*>(args.c) + index * args.batch_stride_c + row_begin * ldc + col_begin;
  GemmArgs piece = args;
  piece.m = row_end - row_begin;
  piece.n = col_end - col_begin;
  blas_gemm(piece, a, lda, b, ldb, c, ldc);
}

// How many pieces a product is cut into: one per thread, fewer when it is small. (Each piece
// packs its operands again, so more pieces than threads only cost.)
int64_t gemm_piece_count(const GemmArgs& args) {
  double work = double(args.m) * double(args.n) * double(args.k);
  int64_t by_work = int64_t(work / kGemmWorkPerPiece);
  int64_t by_width = std::max(args.m, args.n) / kMinGemmPieceWidth;
  return std::clamp<int64_t>(std::min({by_work, by_width, int64_t(num_threads())}), 1,
                             kMaxGemmPieces);
}

// One matrix product of the batch, for f32/f64 storage, cut along its longer side of C.
template <typename T>
void gemm_one(const GemmArgs& args, int64_t index, int64_t pieces) {
  bool cut_columns = args.n >= args.m;
  int64_t length = cut_columns ? args.n : args.m;
  // Piece edges fall on multiples of kGemmPieceAlignment, so that OpenBLAS's edge kernels
  // (which round differently on some CPUs) see the same columns or rows in a piece as in the
  // uncut product: each element's bits do not depend on how it was cut.
  int64_t piece_length = (length + pieces - 1) / pieces;
  piece_length =
      (piece_length + kGemmPieceAlignment - 1) / kGemmPieceAlignment * kGemmPieceAlignment;
  pieces = (length + piece_length - 1) / piece_length;
  parallel_for(0, pieces, 1, [&](int64_t first, int64_t last) {
    for (int64_t piece = first; piece < last; ++piece) {
      int64_t begin = piece * piece_length, end = std::min(length, begin + piece_length);
      if (begin >= end) continue;
      if (cut_columns)
        gemm_piece<T>(args, index, 0, args.m, begin, end);
      else
        gemm_piece<T>(args, index, begin, end, 0, args.n);
    }
  });
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
  int64_t pieces = gemm_piece_count(args);
  dispatch_floating(args.dtype, "gemm", [&]<typename T>() {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      if (pieces > 1) {
        // Large products: one at a time, each cut into pieces computed in parallel.
        for (int64_t index = 0; index < args.batch; ++index) gemm_one<T>(args, index, pieces);
        return;
      }
    }
    // Small products (and 16-bit ones): whole, in parallel over the batch.
    parallel_for(0, args.batch, 1, [&](int64_t first, int64_t last) {
      for (int64_t index = first; index < last; ++index) {
        if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
          gemm_piece<T>(args, index, 0, args.m, 0, args.n);
        } else {
          gemm_one_half<T>(args, index);
        }
      }
    });
  });
}

}  // namespace zt::cpu
