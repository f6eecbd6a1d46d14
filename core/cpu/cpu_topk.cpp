// CPU topk: each row partially sorts its positions by core/topk_order.h's order (a total order,
// so the result is unique and matches the CUDA kernel's); rows run in parallel.
#include <algorithm>
#include <numeric>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"
#include "core/topk_order.h"

namespace zt::cpu {

void CpuBackend::topk(const Tensor& in, int64_t k, bool largest, const Tensor& values,
                      const Tensor& indices) {
  int64_t rows = in.size(0), length = in.size(1);
  dispatch_all(in.dtype(), "topk", [&]<typename T>() {
    using C = compute_type<T>;
    const T* source = in.data_ptr<T>();
    T* value_data = values.data_ptr<T>();
    int64_t* index_data = indices.data_ptr<int64_t>();
    parallel_for(0, rows, 1, [&](int64_t first, int64_t last) {
      std::vector<int64_t> order(static_cast<size_t>(length));
      for (int64_t row = first; row < last; ++row) {
        const T* row_data = source + row * length;
        std::iota(order.begin(), order.end(), int64_t(0));
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
          return topk_ranks_before(C(row_data[a]), a, C(row_data[b]), b, largest);
        });
        for (int64_t j = 0; j < k; ++j) {
          value_data[row * k + j] = row_data[order[size_t(j)]];
          index_data[row * k + j] = order[size_t(j)];
        }
      }
    });
  });
}

}  // namespace zt::cpu
