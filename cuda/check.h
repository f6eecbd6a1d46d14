// Turning CUDA runtime and cuBLAS failures into exceptions that name the call, file and line.
// Every runtime call in cuda/ goes through ZT_CUDA_CHECK; kernel launches are followed by
// ZT_CUDA_CHECK_LAUNCH, which reports bad launch configurations (not faults inside kernels,
// which surface at the next synchronising call).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace zt::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                   int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);

}  // namespace zt::cuda

#define ZT_CUDA_CHECK(call)                                                     \
  do {                                                                          \
    cudaError_t zt_cuda_status_ = (call);                                       \
    if (zt_cuda_status_ != cudaSuccess)                                         \
      ::zt::cuda::throw_cuda_error(zt_cuda_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define ZT_CUBLAS_CHECK(call)                                                       \
  do {                                                                              \
    cublasStatus_t zt_cublas_status_ = (call);                                      \
    if (zt_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                 \
      ::zt::cuda::throw_cublas_error(zt_cublas_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define ZT_CUDA_CHECK_LAUNCH() ZT_CUDA_CHECK(cudaGetLastError())
