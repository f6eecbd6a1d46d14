// Offload buffers, copies across devices, and sub-group tiling (dist/zero/host_offload.h).
#include "dist/zero/host_offload.h"

#include <algorithm>
#include <memory>

#include "core/factory.h"
#include "core/ops/view.h"
#include "core/storage.h"

namespace zt::dist {

Tensor offload_buffer(const Shape& sizes, DType dtype, MemoryTag tag, Device engine_device) {
  Allocator* pinned = engine_device.is_cpu() ? nullptr : pinned_host_allocator();
  if (pinned == nullptr) return empty(sizes, {.dtype = dtype, .device = Device::cpu(), .tag = tag});
  auto impl = std::make_shared<TensorImpl>();
  int64_t numel = 1;
  for (int64_t size : sizes) numel *= size;
  impl->storage = std::make_shared<StorageImpl>(size_t(numel) * dtype_size(dtype), *pinned, tag);
  impl->sizes = sizes;
  impl->strides = contiguous_strides(sizes);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

void copy_across(const Tensor& dst, const Tensor& src) {
  if (dst.device() == src.device() || dst.dtype() == src.dtype()) {
    ops::copy_(dst, src);
    return;
  }
  // The narrow bytes cross; the host widens or narrows them.
  if (src.device().is_cpu()) {
    Tensor staged = ops::to_dtype(src, dst.dtype());
    ops::copy_(dst, staged);
  } else {
    Tensor staged =
        empty(src.sizes(), {.dtype = src.dtype(), .device = Device::cpu(), .tag = MemoryTag::comm});
    ops::copy_(staged, src);
    ops::copy_(dst, staged);
  }
}

void offload_owned_parameters(FlatGroupList& groups, Device device) {
  for (auto& group : groups) {
    if (!group->plan.partitioned) continue;
    // Built partitioned for offload (PartitionedInit): already host memory.
    const Tensor& owned = group->owned_params;
    if (device.is_cpu() && owned.storage()->tag() == MemoryTag::param_offload) continue;
    Tensor host = offload_buffer(group->owned_params.sizes(), group->owned_params.dtype(),
                                 MemoryTag::param_offload, device);
    ops::copy_(host, group->owned_params);
    group->owned_params = host;
  }
}

std::vector<SubGroupRun> cut_at_sub_groups(const std::vector<OwnedRun>& runs, int64_t slice_start,
                                           int64_t sub_group_size) {
  std::vector<SubGroupRun> pieces;
  for (const OwnedRun& run : runs) {
    int64_t begin = run.begin;
    int64_t end = run.begin + run.numel;
    while (begin < end) {
      int64_t global = slice_start + begin;
      int64_t sub_group = global / sub_group_size;
      int64_t boundary = (sub_group + 1) * sub_group_size - slice_start;
      int64_t piece_end = std::min(end, boundary);
      pieces.push_back(
          {{.begin = begin, .numel = piece_end - begin, .param_group = run.param_group},
           size_t(sub_group)});
      begin = piece_end;
    }
  }
  return pieces;
}

}  // namespace zt::dist
