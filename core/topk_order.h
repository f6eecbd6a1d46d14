// The order in which topk ranks the elements of a row, shared by the CPU and CUDA kernels so
// that both pick the same indices: by value (largest or smallest first), NaN above every
// number as in PyTorch, and the lower index first among equal values.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/host_device.h"

namespace zt {

// True when (a at index_a) comes before (b at index_b) in topk's output. C is the compute type
// (float for 16-bit dtypes).
template <typename C>
ZT_HOST_DEVICE inline bool topk_ranks_before(C a, int64_t index_a, C b, int64_t index_b,
                                             bool largest) {
  if constexpr (std::is_floating_point_v<C>) {
    bool a_nan = std::isnan(a), b_nan = std::isnan(b);
    if (a_nan || b_nan) {
      if (a_nan && b_nan) return index_a < index_b;
      return largest ? a_nan : b_nan;  // NaN counts as the largest value
    }
  }
  if (a != b) return largest ? a > b : a < b;
  return index_a < index_b;
}

}  // namespace zt
