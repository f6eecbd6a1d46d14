// Finding an out-of-range index on the device, for the kernels whose contract is to throw
// std::out_of_range (embedding, index_select, index_add, cross-entropy targets). The check
// waits for the device (one small copy back), the price of an exception that names the index.
#pragma once

#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace zt::cuda {

struct BadIndex {
  int64_t position;  // the first one in the tensor
  int64_t value;
};

// The first element of contiguous i64 `indices` outside [0, size) that is not `allowed`.
std::optional<BadIndex> find_bad_index(const Tensor& indices, int64_t size,
                                       std::optional<int64_t> allowed = std::nullopt);

}  // namespace zt::cuda
