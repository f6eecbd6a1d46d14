// CUDA max and average pooling over NCHW planes, with the CPU backend's semantics
// (core/cpu/cpu_pool.cpp): max pool records the flat h*W+w index of each maximum (the first on
// ties; a NaN counts as the maximum), average pool divides as PyTorch does. One thread per
// output element forward; backward is a gather, one thread per input element, that visits the
// outputs whose windows hold it in the CPU's order (row by row), so that sums are race-free,
// need no atomics, and round as the CPU's do (16-bit types accumulate in float, rounded once).
// Max-pool backward, which is not told the window, works plane by plane instead.
#include "core/factory.h"
#include "core/pool_geometry.h"
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

__device__ inline int64_t ceil_div_nonnegative(int64_t a, int64_t b) {
  return a <= 0 ? 0 : (a + b - 1) / b;
}

// The output positions along one axis whose windows (stride s, padding p, kernel k, dilation
// d) can reach input position i: [first, last].
__device__ inline void covering_outputs(int64_t i, int64_t s, int64_t p, int64_t k, int64_t d,
                                        int64_t out_size, int64_t& first, int64_t& last) {
  first = ceil_div_nonnegative(i + p - (k - 1) * d, s);
  last = (i + p) / s;
  if (last > out_size - 1) last = out_size - 1;
}

template <typename T>
__global__ void max_pool_forward_kernel(const T* in, PoolGeometry g, Pool2dParams params, T* out,
                                        int64_t* indices) {
  using C = compute_t<T>;
  int64_t total = g.planes * g.out_h * g.out_w;
  for (int64_t linear = global_thread(); linear < total; linear += grid_threads()) {
    int64_t ow = linear % g.out_w, oh = (linear / g.out_w) % g.out_h,
            plane = linear / (g.out_w * g.out_h);
    const T* in_plane = in + plane * g.in_h * g.in_w;
    C best = C(-INFINITY);
    int64_t best_index = -1;
    for (int64_t kh = 0; kh < params.kernel_h; ++kh) {
      int64_t ih = oh * params.stride_h - params.padding_h + kh * params.dilation_h;
      if (ih < 0 || ih >= g.in_h) continue;
      for (int64_t kw = 0; kw < params.kernel_w; ++kw) {
        int64_t iw = ow * params.stride_w - params.padding_w + kw * params.dilation_w;
        if (iw < 0 || iw >= g.in_w) continue;
        C value = load_compute(in_plane[ih * g.in_w + iw]);
        if (best_index < 0 || value > best || (value != value && best == best)) {
          best = value;
          best_index = ih * g.in_w + iw;
        }
      }
    }
    out[linear] = store_compute<T>(best);
    indices[linear] = best_index;
  }
}

// One thread per plane adds the plane's output gradients at their recorded indices, in
// output order as the CPU does, into `accumulated` (grad_input itself for f32/f64, an f32
// scratch for 16-bit types, rounded once afterwards). The backward does not know the window
// geometry, so a gather per input element is not possible; parallelism is over planes.
template <typename T>
__global__ void max_pool_backward_kernel(const T* grad_out, const int64_t* indices, PoolGeometry g,
                                         compute_t<T>* accumulated) {
  using C = compute_t<T>;
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  for (int64_t plane = global_thread(); plane < g.planes; plane += grid_threads()) {
    C* target = accumulated + plane * in_plane;
    for (int64_t p = 0; p < in_plane; ++p) target[p] = C(0);
    const int64_t* index_plane = indices + plane * out_plane;
    const T* grad_plane = grad_out + plane * out_plane;
    for (int64_t p = 0; p < out_plane; ++p) {
      if (index_plane[p] >= 0) target[index_plane[p]] += load_compute(grad_plane[p]);
    }
  }
}

template <typename T>
__global__ void avg_pool_forward_kernel(const T* in, PoolGeometry g, Pool2dParams params, T* out) {
  using C = compute_t<T>;
  int64_t total = g.planes * g.out_h * g.out_w;
  for (int64_t linear = global_thread(); linear < total; linear += grid_threads()) {
    int64_t ow = linear % g.out_w, oh = (linear / g.out_w) % g.out_h,
            plane = linear / (g.out_w * g.out_h);
    const T* in_plane = in + plane * g.in_h * g.in_w;
    AvgWindow rows = avg_window(oh, params.stride_h, params.padding_h, params.kernel_h, g.in_h);
    AvgWindow cols = avg_window(ow, params.stride_w, params.padding_w, params.kernel_w, g.in_w);
    C sum = 0;
    for (int64_t ih = rows.start; ih < rows.end; ++ih) {
      for (int64_t iw = cols.start; iw < cols.end; ++iw)
        sum += load_compute(in_plane[ih * g.in_w + iw]);
    }
    int64_t divisor = avg_divisor(rows, cols, params.count_include_pad);
    out[linear] = store_compute<T>(divisor > 0 ? C(sum / C(divisor)) : C(0));
  }
}

template <typename T>
__global__ void avg_pool_backward_kernel(const T* grad_out, PoolGeometry g, Pool2dParams params,
                                         T* grad_in) {
  using C = compute_t<T>;
  int64_t total = g.planes * g.in_h * g.in_w;
  for (int64_t linear = global_thread(); linear < total; linear += grid_threads()) {
    int64_t iw = linear % g.in_w, ih = (linear / g.in_w) % g.in_h,
            plane = linear / (g.in_w * g.in_h);
    int64_t first_h, last_h, first_w, last_w;
    covering_outputs(ih, params.stride_h, params.padding_h, params.kernel_h, 1, g.out_h, first_h,
                     last_h);
    covering_outputs(iw, params.stride_w, params.padding_w, params.kernel_w, 1, g.out_w, first_w,
                     last_w);
    const T* grad_plane = grad_out + plane * g.out_h * g.out_w;
    C sum = 0;
    for (int64_t oh = first_h; oh <= last_h; ++oh) {
      AvgWindow rows = avg_window(oh, params.stride_h, params.padding_h, params.kernel_h, g.in_h);
      if (ih < rows.start || ih >= rows.end) continue;
      for (int64_t ow = first_w; ow <= last_w; ++ow) {
        AvgWindow cols = avg_window(ow, params.stride_w, params.padding_w, params.kernel_w, g.in_w);
        if (iw < cols.start || iw >= cols.end) continue;
        int64_t divisor = avg_divisor(rows, cols, params.count_include_pad);
        if (divisor <= 0) continue;
        sum += C(load_compute(grad_plane[oh * g.out_w + ow]) / C(divisor));
      }
    }
    grad_in[linear] = store_compute<T>(sum);
  }
}

}  // namespace

void CudaBackend::max_pool2d_forward(const Tensor& input, const Tensor& out, const Tensor& indices,
                                     const Pool2dParams& params) {
  PoolGeometry g = pool_geometry(input, out);
  int64_t total = g.planes * g.out_h * g.out_w;
  if (total == 0) return;
  KernelScope scope(out.device());
  dispatch_floating(input.dtype(), "max_pool2d", [&]<typename T>() {
    max_pool_forward_kernel<T><<<scope.blocks_for(total), kThreads, 0, scope.stream()>>>(
        static_cast<const T*>(input.raw_data()), g, params, static_cast<T*>(out.raw_data()),
        static_cast<int64_t*>(indices.raw_data()));
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::max_pool2d_backward(const Tensor& grad_out, const Tensor& indices,
                                      const Tensor& grad_input) {
  PoolGeometry g = pool_geometry(grad_input, grad_out);
  if (g.planes * g.in_h * g.in_w == 0) return;
  KernelScope scope(grad_input.device());
  dispatch_floating(grad_out.dtype(), "max_pool2d_backward", [&]<typename T>() {
    using C = compute_t<T>;
    Tensor scratch;
    if constexpr (!std::is_same_v<T, C>) {
      scratch =
          empty(grad_input.sizes(),
                {.dtype = DType::f32, .device = grad_input.device(), .tag = MemoryTag::other});
    }
    C* accumulated = scratch.defined() ? static_cast<C*>(scratch.raw_data())
                                       : static_cast<C*>(grad_input.raw_data());
    max_pool_backward_kernel<T><<<scope.blocks_for(g.planes, 64), 64, 0, scope.stream()>>>(
        static_cast<const T*>(grad_out.raw_data()), static_cast<const int64_t*>(indices.raw_data()),
        g, accumulated);
    ZT_CUDA_CHECK_LAUNCH();
    if (scratch.defined()) copy(scratch, grad_input);
  });
}

void CudaBackend::avg_pool2d_forward(const Tensor& input, const Tensor& out,
                                     const Pool2dParams& params) {
  PoolGeometry g = pool_geometry(input, out);
  int64_t total = g.planes * g.out_h * g.out_w;
  if (total == 0) return;
  KernelScope scope(out.device());
  dispatch_floating(input.dtype(), "avg_pool2d", [&]<typename T>() {
    avg_pool_forward_kernel<T><<<scope.blocks_for(total), kThreads, 0, scope.stream()>>>(
        static_cast<const T*>(input.raw_data()), g, params, static_cast<T*>(out.raw_data()));
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_input,
                                      const Pool2dParams& params) {
  PoolGeometry g = pool_geometry(grad_input, grad_out);
  int64_t total = g.planes * g.in_h * g.in_w;
  if (total == 0) return;
  KernelScope scope(grad_input.device());
  dispatch_floating(grad_out.dtype(), "avg_pool2d_backward", [&]<typename T>() {
    avg_pool_backward_kernel<T><<<scope.blocks_for(total), kThreads, 0, scope.stream()>>>(
        static_cast<const T*>(grad_out.raw_data()), g, params,
        static_cast<T*>(grad_input.raw_data()));
    ZT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace zt::cuda
