// CudaBackend::gemm: row-major C = alpha * op(A) @ op(B) + beta * C through
// cublasGemmStridedBatchedEx. cuBLAS is column-major, so the row-major product is computed as
// the column-major C^T = op(B)^T @ op(A)^T on the same memory, without copies. f32 computes in
// f32 (TF32 only after set_allow_tf32(true)), f64 in f64, f16/bf16 with f32 accumulation and
// f32 alpha/beta. An empty inner dimension (k = 0) leaves C = beta * C, done by our own kernel
// so that beta = 0 overwrites even NaN, as on the CPU.
#include <limits>
#include <stdexcept>
#include <string>

#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

template <typename T>
__global__ void scale_matrices_kernel(T* c, int64_t m, int64_t n, int64_t ldc, int64_t batch_stride,
                                      int64_t batch, double beta) {
  int64_t total = batch * m * n;
  for (int64_t linear = global_thread(); linear < total; linear += grid_threads()) {
    int64_t col = linear % n, row = (linear / n) % m, index = linear / (m * n);
    T& value = c[index * batch_stride + row * ldc + col];
    value = beta == 0.0 ? convert<T>(0.0)
                        : store_compute<T>(compute_t<T>(compute_t<T>(beta) * load_compute(value)));
  }
}

// BLAS rejects a leading dimension below the stored row length even when the matrix has a
// single row, where the stride is meaningless; give it the smallest legal value then.
int64_t legal_leading_dim(int64_t leading_dim, int64_t stored_rows, int64_t stored_cols) {
  int64_t minimum = stored_cols > 1 ? stored_cols : 1;
  if (stored_rows <= 1 && leading_dim < minimum) return minimum;
  return leading_dim;
}

int checked_int(int64_t value, const char* what) {
  if (value > std::numeric_limits<int>::max()) {
    throw std::invalid_argument(std::string("gemm on CUDA: ") + what + " " + std::to_string(value) +
                                " exceeds cuBLAS's int range");
  }
  return int(value);
}

cudaDataType_t cuda_data_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return CUDA_R_32F;
    case DType::f64:
      return CUDA_R_64F;
    case DType::f16:
      return CUDA_R_16F;
    case DType::bf16:
      return CUDA_R_16BF;
    default:
      unsupported_dtype("gemm", dtype);
  }
}

}  // namespace

void CudaBackend::gemm(const GemmArgs& args) {
  if (args.m <= 0 || args.n <= 0 || args.batch <= 0) return;
  // The device is the one holding C.
  cudaPointerAttributes attributes{};
  ZT_CUDA_CHECK(cudaPointerGetAttributes(&attributes, args.c));
  if (attributes.type != cudaMemoryTypeDevice) {
    throw std::invalid_argument("gemm on CUDA: the output is not in device memory");
  }
  KernelScope scope(Device::cuda(attributes.device));
  if (args.k <= 0) {
    dispatch_floating(args.dtype, "gemm", [&]<typename T>() {
      int64_t total = args.batch * args.m * args.n;
      scale_matrices_kernel<T><<<scope.blocks_for(total), kThreads, 0, scope.stream()>>>(
          static_cast<T*>(args.c), args.m, args.n, args.ldc, args.batch_stride_c, args.batch,
          args.beta);
      ZT_CUDA_CHECK_LAUNCH();
    });
    return;
  }
  cudaDataType_t data_type = cuda_data_type(args.dtype);
  const bool f64 = args.dtype == DType::f64;
  cublasComputeType_t compute =
      f64 ? CUBLAS_COMPUTE_64F
          : (args.dtype == DType::f32 && allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                      : CUBLAS_COMPUTE_32F);
  float alpha_f32 = float(args.alpha), beta_f32 = float(args.beta);
  const void* alpha = f64 ? static_cast<const void*>(&args.alpha) : &alpha_f32;
  const void* beta = f64 ? static_cast<const void*>(&args.beta) : &beta_f32;
  // Stored (row-major) shapes of A and B, for the leading-dimension rule.
  int64_t a_rows = args.transpose_a ? args.k : args.m, a_cols = args.transpose_a ? args.m : args.k;
  int64_t b_rows = args.transpose_b ? args.n : args.k, b_cols = args.transpose_b ? args.k : args.n;
  int64_t lda = legal_leading_dim(args.lda, a_rows, a_cols);
  int64_t ldb = legal_leading_dim(args.ldb, b_rows, b_cols);
  int64_t ldc = legal_leading_dim(args.ldc, args.m, args.n);
  cublasHandle_t handle = context(scope.index()).blas;
  ZT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      handle, args.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
      args.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, checked_int(args.n, "n"),
      checked_int(args.m, "m"), checked_int(args.k, "k"), alpha, args.b, data_type,
      checked_int(ldb, "ldb"), args.batch_stride_b, args.a, data_type, checked_int(lda, "lda"),
      args.batch_stride_a, beta, args.c, data_type, checked_int(ldc, "ldc"), args.batch_stride_c,
      checked_int(args.batch, "batch"), compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace zt::cuda
