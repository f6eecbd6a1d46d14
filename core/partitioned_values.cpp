// Slice-only tensors (core/partitioned_values.h).
#include "core/partitioned_values.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/ops/view.h"

namespace zt {

int64_t PartitionedValues::owned_first() const {
  return std::clamp(group->slice_begin() - offset, int64_t(0), numel);
}

int64_t PartitionedValues::owned_end() const {
  return std::clamp(group->slice_begin() + group->slice_numel() - offset, int64_t(0), numel);
}

Tensor PartitionedValues::owned_part() const {
  int64_t first = owned_first();
  int64_t length = owned_end() - first;
  // An empty part still needs a valid start inside the slice.
  int64_t start = length > 0 ? offset + first - group->slice_begin() : 0;
  return ops::narrow(group->owned, 0, start, length);
}

std::string partitioned_read_error(const PartitionedValues& values) {
  return fmt::format(
      "parameter {} (module '{}') lives as slices, one per rank: it was built inside "
      "PartitionedInit, so only nn::init's uniform_/normal_/constant_, Module::to and the ZeRO "
      "stage-3 engine may use it before zt::initialize",
      values.name, values.group->module_name);
}

void make_partitioned(const Tensor& tensor, std::shared_ptr<PartitionedValues> values, DType dtype,
                      Device device) {
  TensorImpl& impl = *tensor.impl();
  impl.storage =
      make_unallocated_storage(size_t(values->numel) * dtype_size(dtype), device, MemoryTag::param);
  // The describer outlives a rename: it reads the name when the error happens.
  std::weak_ptr<PartitionedValues> described = values;
  impl.storage->set_released_describer([described](size_t) {
    auto held = described.lock();
    return held ? partitioned_read_error(*held) : std::string();
  });
  impl.offset = 0;
  impl.dtype = dtype;
  impl.strides = contiguous_strides(impl.sizes);
  impl.partitioned = std::move(values);
}

}  // namespace zt
