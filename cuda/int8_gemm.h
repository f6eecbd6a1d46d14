// The int8 GEMM of W8A8 layers on an NVIDIA GPU through cuBLASLt: C[m, n] = sum_k A[m, k] *
// B[n, k] with A and B signed 8-bit and C int32 (CUBLAS_COMPUTE_32I), on device buffers, in
// the row-major layout of the CPU kernel (core/cpu/cpu_int8_gemm.h). cuBLASLt's int8 kernels
// take only "TN" products, which this layout is once read column-major: C^T = B^T(T) A^T(N).
// Activation codes must be signed here: a CPU code a (unsigned, zero za) is a - 128 with zero
// za - 128. cuBLASLt requires k, lda and ldb to be multiples of 4 (errors say which).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace zt::cuda {

struct Int8GemmDeviceArgs {
  const int8_t* a = nullptr;  // [m, lda] on the device
  int64_t lda = 0;
  const int8_t* b = nullptr;  // [n, ldb]
  int64_t ldb = 0;
  int32_t* c = nullptr;  // [m, ldc]
  int64_t ldc = 0;
  int64_t m = 0, n = 0, k = 0;
};

// Enqueues the product on `stream`.
void int8_gemm_cublaslt(const Int8GemmDeviceArgs& args, cudaStream_t stream);

}  // namespace zt::cuda
