// ZT_HOST_DEVICE marks a small inline function that both the CPU kernels (compiled by the host
// compiler) and the CUDA kernels (compiled by nvcc) call: __host__ __device__ under nvcc,
// nothing elsewhere. Such functions must not allocate, throw or touch host-only state.
#pragma once

#if defined(__CUDACC__)
#define ZT_HOST_DEVICE __host__ __device__
#else
#define ZT_HOST_DEVICE
#endif
