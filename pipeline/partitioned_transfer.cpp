// Slicing and all-gathering boundary tensors over the tensor group.
#include "pipeline/partitioned_transfer.h"

#include <algorithm>

#include "core/factory.h"
#include "core/ops/view.h"

namespace zt::pipeline {

int64_t partition_numel(int64_t numel, int parts) {
  return (numel + parts - 1) / parts;
}

Tensor partition_slice(const Tensor& tensor, int parts, int index) {
  const int64_t numel = tensor.numel(), length = partition_numel(numel, parts);
  const int64_t begin = std::min(numel, int64_t(index) * length);
  const int64_t present = std::min(length, numel - begin);
  Tensor flat = ops::reshape(tensor.contiguous(), {numel});
  if (present == length) return ops::narrow(flat, 0, begin, length).contiguous();
  Tensor padded =
      zeros({length}, {.dtype = tensor.dtype(), .device = tensor.device(), .tag = MemoryTag::comm});
  if (present > 0)
    ops::copy_(ops::narrow(padded, 0, 0, present), ops::narrow(flat, 0, begin, present));
  return padded;
}

Tensor gather_partitioned(const Tensor& slice, const Shape& sizes, comm::Communicator& group) {
  Tensor whole =
      empty({slice.numel() * group.size()},
            {.dtype = slice.dtype(), .device = slice.device(), .tag = MemoryTag::activation});
  group.all_gather(slice, whole);
  int64_t numel = 1;
  for (int64_t size : sizes) numel *= size;
  return ops::reshape(ops::narrow(whole, 0, 0, numel), sizes).contiguous();
}

}  // namespace zt::pipeline
