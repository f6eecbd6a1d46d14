// CPU rotary position embedding in the rotate-half pairing: each row of x [outer, T, D] is
// rotated pairwise (element i with i + D/2) by the angles of its position t. The backward is
// the same loop with the sine negated (a rotation by -angle). Computed in the compute type.
#include <algorithm>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"

namespace zt::cpu {

void CpuBackend::rotary_embedding(const Tensor& x, const Tensor& cos, const Tensor& sin,
                                  bool inverse, const Tensor& out) {
  int64_t positions = cos.size(0), half = cos.size(1);
  int64_t dim = 2 * half;
  int64_t rows = half > 0 ? x.numel() / dim : 0;
  dispatch_floating(x.dtype(), "rotary_embedding", [&]<typename T>() {
    using Acc = compute_type<T>;
    const T* in = x.data_ptr<T>();
    const T* cos_data = cos.data_ptr<T>();
    const T* sin_data = sin.data_ptr<T>();
    T* result = out.data_ptr<T>();
    const Acc sign = inverse ? Acc(-1) : Acc(1);
    int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim));
    parallel_for(0, rows, grain, [&](int64_t first, int64_t last) {
      for (int64_t row = first; row < last; ++row) {
        int64_t t = row % positions;
        const T* first_half = in + row * dim;
        const T* second_half = first_half + half;
        const T* c = cos_data + t * half;
        const T* s = sin_data + t * half;
        T* y = result + row * dim;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          Acc x1 = Acc(first_half[i]), x2 = Acc(second_half[i]);
          Acc cosine = Acc(c[i]), sine = sign * Acc(s[i]);
          y[i] = T(x1 * cosine - x2 * sine);
          y[i + half] = T(x2 * cosine + x1 * sine);
        }
      }
    });
  });
}

}  // namespace zt::cpu
