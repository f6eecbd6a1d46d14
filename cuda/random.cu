// CUDA uniform, normal and dropout kernels over contiguous tensors, drawing the same Philox
// stream as the CPU backend (core/philox.h is the contract): element i depends only on
// (seed, offset + i). Uniform draws and dropout masks are bitwise equal to the CPU's: the
// affine maps use explicitly rounded double operations (__dmul_rn/__dadd_rn), because a fused
// multiply-add, which nvcc would otherwise emit, rounds once where the CPU rounds twice.
// Normal draws go through the device's log/cos, which may differ from glibc's in the last bit
// of a double, so they agree with the CPU to a few ulps of the output, not always bitwise.
#include "core/philox.h"
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

// The uniform [0, 1) draw of element `index`: 53 bits for f64, else 24 bits.
template <typename T>
__device__ inline double uniform_draw(uint64_t seed, uint64_t offset, int64_t index) {
  philox::Block block = philox::block_for(seed, offset, uint64_t(index));
  if constexpr (std::is_same_v<T, double>) {
    return philox::uniform_53bit(block.word[0], block.word[1]);
  } else {
    return double(philox::uniform_24bit(block.word[0]));
  }
}

template <typename T>
__global__ void uniform_kernel(T* out, int64_t n, double low, double range, uint64_t seed,
                               uint64_t offset) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    double u = uniform_draw<T>(seed, offset, i);
    out[i] = round_from_double<T>(__dadd_rn(low, __dmul_rn(range, u)));
  }
}

template <typename T>
__global__ void normal_kernel(T* out, int64_t n, double mean, double stddev, uint64_t seed,
                              uint64_t offset) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    philox::Block block = philox::block_for(seed, offset, uint64_t(i));
    double standard = std::is_same_v<T, double> ? philox::normal_from_53bit(block)
                                                : philox::normal_from_24bit(block);
    out[i] = round_from_double<T>(__dadd_rn(mean, __dmul_rn(stddev, standard)));
  }
}

template <typename T>
__global__ void dropout_forward_kernel(const T* in, T* out, uint8_t* mask, int64_t n, double p,
                                       compute_t<T> scale, uint64_t seed, uint64_t offset) {
  using C = compute_t<T>;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    bool keep = uniform_draw<T>(seed, offset, i) >= p;
    mask[i] = keep ? 1 : 0;
    out[i] = store_compute<T>(keep ? C(load_compute(in[i]) * scale) : C(0));
  }
}

template <typename T>
struct DropoutBackwardOp {
  compute_t<T> scale;
  __device__ T operator()(T grad, uint8_t kept) const {
    using C = compute_t<T>;
    return store_compute<T>(kept != 0 ? C(load_compute(grad) * scale) : C(0));
  }
};

}  // namespace

void CudaBackend::uniform(const Tensor& dst, double low, double high, uint64_t seed,
                          uint64_t offset) {
  KernelScope scope(dst.device());
  dispatch_floating(dst.dtype(), "uniform", [&]<typename T>() {
    int64_t n = dst.numel();
    uniform_kernel<T><<<scope.blocks_for(n), kThreads, 0, scope.stream()>>>(
        static_cast<T*>(dst.raw_data()), n, low, high - low, seed, offset);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::normal(const Tensor& dst, double mean, double stddev, uint64_t seed,
                         uint64_t offset) {
  KernelScope scope(dst.device());
  dispatch_floating(dst.dtype(), "normal", [&]<typename T>() {
    int64_t n = dst.numel();
    normal_kernel<T><<<scope.blocks_for(n), kThreads, 0, scope.stream()>>>(
        static_cast<T*>(dst.raw_data()), n, mean, stddev, seed, offset);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::dropout_forward(const Tensor& input, const Tensor& out, const Tensor& mask,
                                  double p, uint64_t seed, uint64_t offset) {
  KernelScope scope(out.device());
  dispatch_floating(input.dtype(), "dropout_forward", [&]<typename T>() {
    int64_t n = input.numel();
    dropout_forward_kernel<T><<<scope.blocks_for(n), kThreads, 0, scope.stream()>>>(
        static_cast<const T*>(input.raw_data()), static_cast<T*>(out.raw_data()),
        static_cast<uint8_t*>(mask.raw_data()), n, p, compute_t<T>(1.0 / (1.0 - p)), seed, offset);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::dropout_backward(const Tensor& grad_out, const Tensor& mask, double p,
                                   const Tensor& grad_input) {
  KernelScope scope(grad_input.device());
  dispatch_floating(grad_out.dtype(), "dropout_backward", [&]<typename T>() {
    launch_elementwise<T, T, uint8_t>(scope, DropoutBackwardOp<T>{compute_t<T>(1.0 / (1.0 - p))},
                                      grad_input, {&grad_out, &mask});
  });
}

}  // namespace zt::cuda
