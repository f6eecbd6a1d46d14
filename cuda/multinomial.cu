// CUDA multinomial: one thread per row through multinomial_row (core/multinomial_draw.h), the
// CPU kernel's arithmetic in f64, so both pick the same categories. A row's draws depend on
// each other without replacement, hence a thread (not a block) per row; rows of a batch run
// side by side.
#include "core/multinomial_draw.h"
#include "cuda/cuda_backend.h"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

__global__ void multinomial_kernel(double* weights, int64_t rows, int64_t categories,
                                   int64_t num_samples, bool replacement, uint64_t seed,
                                   uint64_t offset, int64_t* out) {
  for (int64_t row = global_thread(); row < rows; row += grid_threads()) {
    multinomial_row(weights + row * categories, categories, num_samples, replacement, seed, offset,
                    uint64_t(row * num_samples), out + row * num_samples);
  }
}

}  // namespace

void CudaBackend::multinomial(const Tensor& probs, int64_t num_samples, bool replacement,
                              uint64_t seed, uint64_t offset, const Tensor& out) {
  int64_t rows = probs.size(0);
  if (rows == 0 || num_samples == 0) return;
  KernelScope scope(probs.device());
  multinomial_kernel<<<scope.blocks_for(rows), kThreads, 0, scope.stream()>>>(
      static_cast<double*>(probs.raw_data()), rows, probs.size(1), num_samples, replacement, seed,
      offset, static_cast<int64_t*>(out.raw_data()));
  ZT_CUDA_CHECK_LAUNCH();
}

}  // namespace zt::cuda
