// CUDA copy (casts among all 7 dtypes, any strides, and moves between host and devices), fill
// and arange. Between devices, bytes move only contiguous and in the source dtype: a strided
// or casting copy is packed on the source side and/or finished by a same-device copy on the
// destination side. A copy to the host waits for the device; a copy from the host returns once
// the driver has staged the source (cudaMemcpyAsync from pageable memory) or, from pinned
// memory, once the copy has finished, so the source may be freed at once.
#include "core/backend.h"
#include "core/factory.h"
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

template <typename Dst, typename Src>
struct ConvertOp {
  __device__ Dst operator()(Src value) const { return convert<Dst>(value); }
};

template <typename T>
struct FillOp {
  double value;
  __device__ T operator()() const { return convert<T>(value); }
};

template <typename T>
__global__ void arange_kernel(T* out, int64_t n, double start, double step) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    // No fused multiply-add: the CPU rounds the product and the sum separately.
    out[i] = convert<T>(__dadd_rn(start, __dmul_rn(double(i), step)));
  }
}

void same_device_copy(const Tensor& src, const Tensor& dst) {
  KernelScope scope(dst.device());
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    ZT_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(),
                                  cudaMemcpyDeviceToDevice, scope.stream()));
    return;
  }
  dispatch_all(dst.dtype(), "copy", [&]<typename Dst>() {
    dispatch_all(src.dtype(), "copy", [&]<typename Src>() {
      launch_elementwise<Dst, Src>(scope, ConvertOp<Dst, Src>{}, dst, {&src});
    });
  });
}

// Whether `host` lies in memory the CUDA driver has page-locked (cudaHostAlloc, pinned tensors).
bool is_page_locked(const void* host) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, host) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeHost;
}

// Copies the bytes of contiguous `from` into contiguous `to` (same dtype and size), with at
// least one of them on a CUDA device.
void transfer_bytes(const Tensor& from, const Tensor& to) {
  const size_t bytes = to.nbytes();
  if (from.device().is_cpu()) {
    KernelScope scope(to.device());
    ZT_CUDA_CHECK(cudaMemcpyAsync(to.raw_data(), from.raw_data(), bytes, cudaMemcpyHostToDevice,
                                  scope.stream()));
    // From page-locked memory the copy is truly asynchronous: wait for it, so that the source
    // may be freed (and a pinned block reused) at once, as from pageable memory.
    if (is_page_locked(from.raw_data())) ZT_CUDA_CHECK(cudaStreamSynchronize(scope.stream()));
    return;
  }
  if (to.device().is_cpu()) {
    KernelScope scope(from.device());
    ZT_CUDA_CHECK(cudaMemcpyAsync(to.raw_data(), from.raw_data(), bytes, cudaMemcpyDeviceToHost,
                                  scope.stream()));
    ZT_CUDA_CHECK(cudaStreamSynchronize(scope.stream()));
    return;
  }
  // Device to device: on the source's stream, after the destination's earlier work, so that
  // neither buffer can be reused by its own stream before the copy has read or written it.
  cudaStream_t source_stream = compute_stream(from.device().index);
  cudaStream_t target_stream = compute_stream(to.device().index);
  {
    DeviceGuard guard(to.device().index);
    stream_wait(source_stream, target_stream);
  }
  DeviceGuard guard(from.device().index);
  ZT_CUDA_CHECK(cudaMemcpyPeerAsync(to.raw_data(), to.device().index, from.raw_data(),
                                    from.device().index, bytes, source_stream));
  stream_wait(target_stream, source_stream);
}

}  // namespace

void CudaBackend::copy(const Tensor& src, const Tensor& dst) {
  if (dst.numel() == 0) return;
  if (src.device() == dst.device()) {
    same_device_copy(src, dst);
    return;
  }
  Tensor packed = src;
  if (!src.is_contiguous()) {
    packed =
        empty(src.sizes(), {.dtype = src.dtype(), .device = src.device(), .tag = MemoryTag::other});
    backend_for(src.device()).copy(src, packed);
  }
  const bool direct = dst.is_contiguous() && dst.dtype() == src.dtype();
  Tensor landing =
      direct ? dst
             : empty(dst.sizes(),
                     {.dtype = src.dtype(), .device = dst.device(), .tag = MemoryTag::other});
  transfer_bytes(packed, landing);
  if (!direct) backend_for(dst.device()).copy(landing, dst);
}

void CudaBackend::fill(const Tensor& dst, double value) {
  KernelScope scope(dst.device());
  dispatch_all(dst.dtype(), "fill",
               [&]<typename T>() { launch_elementwise<T>(scope, FillOp<T>{value}, dst, {}); });
}

void CudaBackend::arange(const Tensor& dst, double start, double step) {
  KernelScope scope(dst.device());
  dispatch_all(dst.dtype(), "arange", [&]<typename T>() {
    int64_t n = dst.numel();
    arange_kernel<T><<<scope.blocks_for(n), kThreads, 0, scope.stream()>>>(
        static_cast<T*>(dst.raw_data()), n, start, step);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace zt::cuda
