// CUDA embedding lookup and its backward, index_select and index_add along one dimension, with
// the CPU backend's semantics (core/cpu/cpu_embedding.cpp). Indices are checked on the device
// first and an out-of-range one throws std::out_of_range naming it. Lookups copy elements as
// raw 1/2/4/8-byte words, so they serve every dtype. Accumulation gives each thread one
// (outer, inner) column and adds the indices in order, rounding after every add as the CPU
// does: bitwise the CPU's result and race-free, but its parallelism is only outer * inner
// (the embedding width for embedding_backward); sorting indices would be the next step.
#include <stdexcept>
#include <string>

#include "core/index_geometry.h"
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/index_check.h"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

void check_indices(const Tensor& indices, int64_t size, const char* op, int64_t dim) {
  if (auto bad = find_bad_index(indices, size)) throw_index_out_of_range(op, bad->value, dim, size);
}

// out[o, i, j] = in[o, indices[i], j] over elements of E (a word as wide as the dtype).
template <typename E>
__global__ void gather_kernel(const E* in, const int64_t* indices, int64_t count, int64_t dim_size,
                              int64_t inner, int64_t total, E* out) {
  for (int64_t linear = global_thread(); linear < total; linear += grid_threads()) {
    int64_t j = linear % inner;
    int64_t rest = linear / inner;
    int64_t i = rest % count, o = rest / count;
    out[linear] = in[(o * dim_size + indices[i]) * inner + j];
  }
}

template <typename T>
__global__ void index_add_kernel(T* out, const T* source, const int64_t* indices, int64_t count,
                                 int64_t dim_size, int64_t inner, int64_t columns,
                                 int64_t skip_index) {
  using C = compute_t<T>;
  for (int64_t column = global_thread(); column < columns; column += grid_threads()) {
    int64_t o = column / inner, j = column % inner;
    for (int64_t i = 0; i < count; ++i) {
      int64_t index = indices[i];
      if (index == skip_index) continue;
      T& to = out[(o * dim_size + index) * inner + j];
      to =
          store_compute<T>(C(load_compute(to) + load_compute(source[(o * count + i) * inner + j])));
    }
  }
}

void gather(const Tensor& in, const Tensor& indices, const DimSplit& split, const Tensor& out) {
  int64_t count = indices.numel();
  int64_t total = split.outer * count * split.inner;
  if (total == 0) return;
  KernelScope scope(out.device());
  const int64_t* index_data = static_cast<const int64_t*>(indices.raw_data());
  auto launch = [&]<typename E>() {
    gather_kernel<E><<<scope.blocks_for(total), kThreads, 0, scope.stream()>>>(
        static_cast<const E*>(in.raw_data()), index_data, count, split.dim_size, split.inner, total,
        static_cast<E*>(out.raw_data()));
    ZT_CUDA_CHECK_LAUNCH();
  };
  switch (in.element_size()) {
    case 1:
      launch.template operator()<uint8_t>();
      break;
    case 2:
      launch.template operator()<uint16_t>();
      break;
    case 4:
      launch.template operator()<uint32_t>();
      break;
    default:
      launch.template operator()<uint64_t>();
      break;
  }
}

void accumulate(const Tensor& out, const Tensor& indices, const Tensor& source,
                const DimSplit& split, int64_t skip_index, bool floating_only, const char* op) {
  int64_t columns = split.outer * split.inner;
  if (columns == 0 || indices.numel() == 0) return;
  KernelScope scope(out.device());
  auto launch = [&]<typename T>() {
    index_add_kernel<T><<<scope.blocks_for(columns), kThreads, 0, scope.stream()>>>(
        static_cast<T*>(out.raw_data()), static_cast<const T*>(source.raw_data()),
        static_cast<const int64_t*>(indices.raw_data()), indices.numel(), split.dim_size,
        split.inner, columns, skip_index);
    ZT_CUDA_CHECK_LAUNCH();
  };
  if (floating_only) {
    dispatch_floating(out.dtype(), op, launch);
  } else {
    dispatch_all(out.dtype(), op, launch);
  }
}

}  // namespace

void CudaBackend::embedding_forward(const Tensor& weight, const Tensor& indices,
                                    const Tensor& out) {
  check_indices(indices, weight.size(0), "embedding", 0);
  gather(weight, indices, DimSplit{1, weight.size(0), weight.size(1)}, out);
}

void CudaBackend::embedding_backward(const Tensor& grad_out, const Tensor& indices,
                                     const Tensor& grad_weight, int64_t padding_idx) {
  check_indices(indices, grad_weight.size(0), "embedding_backward", 0);
  // Indices are in range, so a negative padding_idx ("none") never matches one.
  accumulate(grad_weight, indices, grad_out, DimSplit{1, grad_weight.size(0), grad_weight.size(1)},
             padding_idx, true, "embedding_backward");
}

void CudaBackend::index_select(const Tensor& in, int64_t dim, const Tensor& indices,
                               const Tensor& out) {
  DimSplit split = split_around(in, dim);
  check_indices(indices, split.dim_size, "index_select", dim);
  gather(in, indices, split, out);
}

void CudaBackend::index_add(const Tensor& out, int64_t dim, const Tensor& indices,
                            const Tensor& source) {
  DimSplit split = split_around(out, dim);
  check_indices(indices, split.dim_size, "index_add", dim);
  accumulate(out, indices, source, split, -1, false, "index_add");
}

}  // namespace zt::cuda
