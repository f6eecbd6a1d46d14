// CPU kernels for tril/triu (keep one triangle of each matrix, zero the rest) and cumsum
// (inclusive prefix sums along one dimension, forwards or backwards). Both work on contiguous
// tensors; the ops layer (core/ops/triangle_scan.cpp) makes copies where needed.
#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/index_geometry.h"
#include "core/parallel.h"

namespace zt::cpu {

void CpuBackend::triangle(const Tensor& in, const Tensor& out, int64_t diagonal, bool upper) {
  int64_t rows = in.dim() >= 2 ? in.size(-2) : 1, cols = in.dim() >= 1 ? in.size(-1) : 1;
  int64_t matrices_rows = rows == 0 || cols == 0 ? 0 : in.numel() / cols;
  dispatch_all(in.dtype(), "triangle", [&]<typename T>() {
    const T* source = in.data_ptr<T>();
    T* destination = out.data_ptr<T>();
    parallel_for(0, matrices_rows, 64, [&](int64_t first, int64_t last) {
      for (int64_t row = first; row < last; ++row) {
        int64_t i = row % rows;
        for (int64_t j = 0; j < cols; ++j) {
          bool keep = upper ? j - i >= diagonal : j - i <= diagonal;
          destination[row * cols + j] = keep ? source[row * cols + j] : T(0.0f);
        }
      }
    });
  });
}

void CpuBackend::cumsum(const Tensor& in, const Tensor& out, int64_t dim, bool reverse) {
  DimSplit split = split_around(in, dim);
  auto scan = [&]<typename T, typename Acc>() {
    const T* source = in.data_ptr<T>();
    T* destination = out.data_ptr<T>();
    // One (outer, inner) column per task: each column adds its elements in index order, so
    // the result does not depend on the thread count.
    parallel_for(0, split.outer * split.inner, 256, [&](int64_t first, int64_t last) {
      for (int64_t column = first; column < last; ++column) {
        int64_t o = column / split.inner, j = column % split.inner;
        int64_t base = o * split.dim_size * split.inner + j;
        Acc running = 0;
        for (int64_t step = 0; step < split.dim_size; ++step) {
          int64_t k = reverse ? split.dim_size - 1 - step : step;
          int64_t at = base + k * split.inner;
          running += Acc(source[at]);
          // 16-bit results round once per element, from the f32 running sum.
          destination[at] = T(running);
        }
      }
    });
  };
  if (in.dtype() == DType::i64) {
    scan.template operator()<int64_t, int64_t>();
    return;
  }
  dispatch_floating(in.dtype(), "cumsum",
                    [&]<typename T>() { scan.template operator()<T, compute_type<T>>(); });
}

}  // namespace zt::cpu
