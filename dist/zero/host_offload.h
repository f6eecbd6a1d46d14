// Host memory for offloaded model state (offload_optimizer, offload_param): where its buffers
// come from, how values cross between them and the engine's device, and how an owned slice is
// tiled into sub-groups for the host optimizer's step. On a machine without a GPU the host
// allocator serves both sides and the host-resident tags keep the bytes apart; on a GPU the
// host side is pinned so that copies to and from the device can run asynchronously.
#pragma once

#include <cstdint>
#include <vector>

#include "core/allocator.h"
#include "core/tensor.h"
#include "dist/zero/flat_group_buffers.h"
#include "dist/zero/owned_runs.h"

namespace zt::dist {

// A contiguous host tensor under `tag` (a host-resident one): pinned when the engine's device
// is a GPU and a pinned allocator is registered, else from the ordinary host allocator.
Tensor offload_buffer(const Shape& sizes, DType dtype, MemoryTag tag, Device engine_device);

// dst = src across devices and dtypes at once (a 16-bit device gradient into an fp32 host
// buffer): the device-to-host copy moves the 16-bit bytes, the widening happens on the host.
void copy_across(const Tensor& dst, const Tensor& src);

// offload_param "cpu" (P_p): the owned parameter slice of every partitioned group moves to
// host memory under param_offload; gathers copy it to the device (ParameterGatherer), updates
// write it there. Groups kept whole (the persistence threshold) stay on the device.
void offload_owned_parameters(FlatGroupList& groups, Device device);

// One run of an owned slice with the sub-group it falls in: sub-group s holds the elements
// [s * sub_group_size, (s + 1) * sub_group_size) of the rank's owned elements laid end to end
// over the flat groups in plan order.
struct SubGroupRun {
  OwnedRun run;
  size_t sub_group = 0;
};

// Cuts `runs` (of a slice that starts at element `slice_start` of that end-to-end layout) at
// every sub-group boundary; each piece keeps its parameter group.
std::vector<SubGroupRun> cut_at_sub_groups(const std::vector<OwnedRun>& runs, int64_t slice_start,
                                           int64_t sub_group_size);

}  // namespace zt::dist
