// CUDA kernels for tril/triu and cumsum with the CPU backend's semantics
// (core/cpu/cpu_triangle_scan.cpp). cumsum gives each (outer, inner) column one thread that
// adds in index order, as the CPU does, so both backends round alike; its parallelism is
// outer * inner, enough for the batched scans of a transformer (a block scan would be next).
#include "core/index_geometry.h"
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

template <typename T>
__global__ void triangle_kernel(const T* in, T* out, int64_t rows, int64_t cols, int64_t total,
                                int64_t diagonal, bool upper) {
  for (int64_t linear = global_thread(); linear < total; linear += grid_threads()) {
    int64_t j = linear % cols, i = (linear / cols) % rows;
    bool keep = upper ? j - i >= diagonal : j - i <= diagonal;
    out[linear] = keep ? in[linear] : store_compute<T>(compute_t<T>(0));
  }
}

template <typename T, typename Acc>
__global__ void cumsum_kernel(const T* in, T* out, int64_t dim_size, int64_t inner, int64_t columns,
                              bool reverse) {
  for (int64_t column = global_thread(); column < columns; column += grid_threads()) {
    int64_t o = column / inner, j = column % inner;
    int64_t base = o * dim_size * inner + j;
    Acc running = 0;
    for (int64_t step = 0; step < dim_size; ++step) {
      int64_t k = reverse ? dim_size - 1 - step : step;
      int64_t at = base + k * inner;
      running += Acc(load_compute(in[at]));
      out[at] = store_compute<T>(compute_t<T>(running));
    }
  }
}

}  // namespace

void CudaBackend::triangle(const Tensor& in, const Tensor& out, int64_t diagonal, bool upper) {
  int64_t total = in.numel();
  if (total == 0) return;
  int64_t rows = in.size(-2), cols = in.size(-1);
  KernelScope scope(out.device());
  dispatch_all(in.dtype(), "triangle", [&]<typename T>() {
    triangle_kernel<T><<<scope.blocks_for(total), kThreads, 0, scope.stream()>>>(
        static_cast<const T*>(in.raw_data()), static_cast<T*>(out.raw_data()), rows, cols, total,
        diagonal, upper);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::cumsum(const Tensor& in, const Tensor& out, int64_t dim, bool reverse) {
  DimSplit split = split_around(in, dim);
  int64_t columns = split.outer * split.inner;
  if (columns == 0 || split.dim_size == 0) return;
  KernelScope scope(out.device());
  auto launch = [&]<typename T, typename Acc>() {
    cumsum_kernel<T, Acc><<<scope.blocks_for(columns), kThreads, 0, scope.stream()>>>(
        static_cast<const T*>(in.raw_data()), static_cast<T*>(out.raw_data()), split.dim_size,
        split.inner, columns, reverse);
    ZT_CUDA_CHECK_LAUNCH();
  };
  if (in.dtype() == DType::i64) {
    launch.template operator()<int64_t, int64_t>();
    return;
  }
  dispatch_floating(in.dtype(), "cumsum",
                    [&]<typename T>() { launch.template operator()<T, compute_t<T>>(); });
}

}  // namespace zt::cuda
