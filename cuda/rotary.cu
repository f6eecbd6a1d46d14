// CUDA rotary position embedding in the rotate-half pairing, with the CPU backend's numerics
// (core/cpu/cpu_rotary.cpp): one thread per pair (element i and i + D/2 of a row of x
// [outer, T, D]), computed in the compute type; `inverse` negates the sine (the backward).
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

template <typename T>
__global__ void rotary_kernel(const T* in, const T* cos, const T* sin, int64_t positions,
                              int64_t half, int64_t pairs, bool inverse, T* out) {
  using Acc = compute_t<T>;
  for (int64_t pair = global_thread(); pair < pairs; pair += grid_threads()) {
    const int64_t row = pair / half, i = pair % half;
    const int64_t table = (row % positions) * half + i;
    const int64_t first = row * 2 * half + i;
    const Acc x1 = load_compute(in[first]), x2 = load_compute(in[first + half]);
    const Acc cosine = load_compute(cos[table]);
    const Acc sine = inverse ? -load_compute(sin[table]) : load_compute(sin[table]);
    out[first] = store_compute<T>(x1 * cosine - x2 * sine);
    out[first + half] = store_compute<T>(x2 * cosine + x1 * sine);
  }
}

}  // namespace

void CudaBackend::rotary_embedding(const Tensor& x, const Tensor& cos, const Tensor& sin,
                                   bool inverse, const Tensor& out) {
  const int64_t positions = cos.size(0), half = cos.size(1);
  const int64_t pairs = x.numel() / 2;
  if (pairs == 0 || half == 0) return;
  KernelScope scope(out.device());
  dispatch_floating(x.dtype(), "rotary_embedding", [&]<typename T>() {
    rotary_kernel<T><<<scope.blocks_for(pairs), kThreads, 0, scope.stream()>>>(
        static_cast<const T*>(x.raw_data()), static_cast<const T*>(cos.raw_data()),
        static_cast<const T*>(sin.raw_data()), positions, half, pairs, inverse,
        static_cast<T*>(out.raw_data()));
    ZT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace zt::cuda
