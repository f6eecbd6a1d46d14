// CPU multinomial: rows in parallel, each through multinomial_row (core/multinomial_draw.h),
// the same arithmetic as the CUDA kernel. The ops layer hands a private f64 copy of probs,
// which sampling without replacement overwrites.
#include "core/cpu/cpu_backend.h"
#include "core/multinomial_draw.h"
#include "core/parallel.h"

namespace zt::cpu {

void CpuBackend::multinomial(const Tensor& probs, int64_t num_samples, bool replacement,
                             uint64_t seed, uint64_t offset, const Tensor& out) {
  int64_t rows = probs.size(0), categories = probs.size(1);
  double* weights = probs.data_ptr<double>();
  int64_t* samples = out.data_ptr<int64_t>();
  parallel_for(0, rows, 1, [&](int64_t first, int64_t last) {
    for (int64_t row = first; row < last; ++row) {
      multinomial_row(weights + row * categories, categories, num_samples, replacement, seed,
                      offset, uint64_t(row * num_samples), samples + row * num_samples);
    }
  });
}

}  // namespace zt::cpu
