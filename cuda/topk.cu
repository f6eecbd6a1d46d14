// CUDA topk with the CPU's order (core/topk_order.h): one thread per row makes k selection
// passes, each picking the best element ranked after the previous pick. O(n * k) per row and
// no shared memory: simple and bitwise the CPU's choice; it suits the small k of sampling
// (top-k of a vocabulary) rather than sorting long rows, where a block-wide radix select
// would be the next step.
#include "core/topk_order.h"
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

template <typename T>
__global__ void topk_kernel(const T* in, int64_t rows, int64_t length, int64_t k, bool largest,
                            T* values, int64_t* indices) {
  using C = compute_t<T>;
  for (int64_t row = global_thread(); row < rows; row += grid_threads()) {
    const T* row_data = in + row * length;
    C previous_value{};
    int64_t previous_index = -1;
    for (int64_t j = 0; j < k; ++j) {
      int64_t best = -1;
      C best_value{};
      for (int64_t i = 0; i < length; ++i) {
        C value = load_compute(row_data[i]);
        bool after_previous = previous_index < 0 ||
                              topk_ranks_before(previous_value, previous_index, value, i, largest);
        if (after_previous &&
            (best < 0 || topk_ranks_before(value, i, best_value, best, largest))) {
          best = i;
          best_value = value;
        }
      }
      values[row * k + j] = row_data[best];
      indices[row * k + j] = best;
      previous_value = best_value;
      previous_index = best;
    }
  }
}

}  // namespace

void CudaBackend::topk(const Tensor& in, int64_t k, bool largest, const Tensor& values,
                       const Tensor& indices) {
  int64_t rows = in.size(0), length = in.size(1);
  if (rows == 0 || k == 0) return;
  KernelScope scope(in.device());
  dispatch_all(in.dtype(), "topk", [&]<typename T>() {
    topk_kernel<T><<<scope.blocks_for(rows), kThreads, 0, scope.stream()>>>(
        static_cast<const T*>(in.raw_data()), rows, length, k, largest,
        static_cast<T*>(values.raw_data()), static_cast<int64_t*>(indices.raw_data()));
    ZT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace zt::cuda
