// Building a group's flat buffers from the model's parameters (dist/zero/flat_group_buffers.h).
#include "dist/zero/flat_group_buffers.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/partitioned_values.h"
#include "dist/zero/host_offload.h"

namespace zt::dist {
namespace {

void check_dtype(const FlatGroup& planned, DType dtype) {
  for (const PlannedParam& entry : planned.params) {
    if (entry.param.dtype() == dtype) continue;
    throw std::invalid_argument(fmt::format(
        "Engine: parameter {} is {}, but the config trains {} parameters (16-bit training "
        "is asked for with the fp16 or bf16 block, and the engine converts the model)",
        entry.name, dtype_name(entry.param.dtype()), dtype_name(dtype)));
  }
}

// full_params with every parameter moved into it (the parameters become views of it), holding
// rank 0's values on every rank, whatever each rank's seed did.
void move_parameters_into_flat_buffer(FlatGroupBuffers& group, DType dtype, Device device,
                                      comm::Communicator& data_parallel) {
  group.full_params =
      zeros({group.plan.padded_numel}, {.dtype = dtype, .device = device, .tag = MemoryTag::param});
  group.full_storage = group.full_params.storage();
  for (PlannedParam& entry : group.plan.params) {
    ops::copy_(flat_range(group.full_params, entry.offset, entry.numel),
               ops::reshape(entry.param, {entry.numel}));
    rebind_to_storage(entry.param, group.full_storage, entry.offset);
  }
  data_parallel.broadcast(group.full_params, 0);
}

// Whether the group's parameters were built partitioned (dist/partitioned_init.h). A group is
// all or nothing: the construction scope cuts a module's own parameters together.
bool built_partitioned(const FlatGroup& planned, ZeroPartitioning partitioning) {
  size_t cut = 0;
  for (const PlannedParam& entry : planned.params) cut += is_partitioned(entry.param) ? 1 : 0;
  if (cut == 0) return false;
  const PlannedParam& first = planned.params.front();
  if (!partitioning.parameters) {
    const PlannedParam& example = is_partitioned(first.param) ? first : planned.params.back();
    throw std::invalid_argument(fmt::format(
        "Engine: parameter {} was built inside PartitionedInit and lives as slices, which only "
        "ZeRO stage 3 (zero_optimization.stage 3) takes; build the model whole for stages 0-2",
        example.name));
  }
  for (const PlannedParam& entry : planned.params) {
    if (is_partitioned(entry.param)) continue;
    throw std::invalid_argument(fmt::format(
        "Engine: module '{}' has parameter {} built whole next to parameters built inside "
        "PartitionedInit; build the whole model inside the scope",
        planned.module_name, entry.name));
  }
  return true;
}

// The layout each parameter was cut with must be the plan's, or its slice holds other values.
void check_cut_layout(const FlatGroup& planned, int rank) {
  const PartitionedGroup& group = *planned.params.front().param.impl()->partitioned->group;
  for (const PlannedParam& entry : planned.params) {
    const PartitionedValues& values = *entry.param.impl()->partitioned;
    bool same = values.group.get() == &group && values.offset == entry.offset &&
                group.numel == planned.numel && group.padded_numel == planned.padded_numel &&
                group.world_size == planned.world_size && group.rank == rank && planned.partitioned;
    if (same) continue;
    throw std::invalid_argument(fmt::format(
        "Engine: parameter {} was cut inside PartitionedInit at offset {} of a group of {} "
        "elements over {} ranks (rank {}), but the engine plans it at offset {} of the group of "
        "module '{}', {} elements over {} ranks (rank {}{}); open the scope with the "
        "engine's data-parallel communicator and config (the same "
        "stage3_param_persistence_threshold), and register a shared parameter first in the "
        "module that comes first in the model",
        entry.name, values.offset, group.numel, group.world_size, group.rank, entry.offset,
        planned.module_name, planned.numel, planned.world_size, rank,
        planned.partitioned ? "" : ", kept whole by the persistence threshold"));
  }
}

// Adopts a group built partitioned: its owned slice becomes owned_params as it is, and the
// parameters become views of an unallocated full buffer that gathers fill.
void adopt_partitioned_group(FlatGroupBuffers& group, DType dtype, Device device, int rank) {
  check_cut_layout(group.plan, rank);
  const PartitionedGroup& cut = *group.plan.params.front().param.impl()->partitioned->group;
  if (cut.owned.dtype() != dtype || cut.owned.device() != device) {
    throw std::invalid_argument(
        fmt::format("Engine: the slices of module '{}' are {} on {}, the engine trains {} on {}",
                    group.plan.module_name, dtype_name(cut.owned.dtype()), cut.owned.device().str(),
                    dtype_name(dtype), device.str()));
  }
  group.owned_params = cut.owned;
  group.full_storage = make_unallocated_storage(size_t(group.plan.padded_numel) * dtype_size(dtype),
                                                device, MemoryTag::param);
  for (PlannedParam& entry : group.plan.params) {
    entry.param.impl()->partitioned.reset();
    rebind_to_storage(entry.param, group.full_storage, entry.offset);
  }
}

void make_gradient_buffers(FlatGroupBuffers& group, ZeroPartitioning partitioning, DType dtype,
                           Device device, int rank, bool owned_grads_on_host) {
  int64_t slice = group.plan.slice_numel();
  int64_t slice_begin = group.plan.slice_begin(rank);
  if (partitioning.gradients && owned_grads_on_host) {
    group.owned_grads = offload_buffer({slice}, dtype, MemoryTag::grad_offload, device);
    ops::fill_(group.owned_grads, 0.0);
    return;
  }
  if (partitioning.gradients) {
    group.owned_grads = zeros({slice}, {.dtype = dtype, .device = device, .tag = MemoryTag::grad});
    return;
  }
  group.full_grads =
      zeros({group.plan.padded_numel}, {.dtype = dtype, .device = device, .tag = MemoryTag::grad});
  group.owned_grads = partitioning.optimizer_states
                          ? flat_range(group.full_grads, slice_begin, slice)
                          : group.full_grads;
  for (PlannedParam& entry : group.plan.params) {
    entry.param.set_grad(
        ops::view(flat_range(group.full_grads, entry.offset, entry.numel), entry.param.sizes()));
  }
}

}  // namespace

FlatGroupList build_flat_group_buffers(const PartitionPlan& plan, ZeroPartitioning partitioning,
                                       DType dtype, Device device,
                                       comm::Communicator& data_parallel,
                                       bool owned_grads_on_host) {
  autograd::NoGradGuard no_grad;
  FlatGroupList groups;
  int rank = data_parallel.rank();
  for (const FlatGroup& planned : plan.groups) {
    auto group = std::make_unique<FlatGroupBuffers>();
    group->plan = planned;
    check_dtype(planned, dtype);
    if (built_partitioned(planned, partitioning)) {
      adopt_partitioned_group(*group, dtype, device, rank);
      make_gradient_buffers(*group, partitioning, dtype, device, rank, owned_grads_on_host);
      group->gathered = false;
      groups.push_back(std::move(group));
      continue;
    }
    move_parameters_into_flat_buffer(*group, dtype, device, data_parallel);
    int64_t slice = planned.slice_numel();
    int64_t slice_begin = planned.slice_begin(rank);
    if (!partitioning.optimizer_states) {
      group->owned_params = group->full_params;
    } else if (!partitioning.parameters) {
      group->owned_params = flat_range(group->full_params, slice_begin, slice);
    } else {
      group->owned_params = ops::clone(flat_range(group->full_params, slice_begin, slice));
    }
    make_gradient_buffers(*group, partitioning, dtype, device, rank, owned_grads_on_host);
    // P_p: only the owned slice stays; the whole group comes back by all-gather when used.
    bool kept_partitioned = partitioning.parameters && group->plan.partitioned;
    if (kept_partitioned) group->full_storage->release();
    group->gathered = !kept_partitioned;
    if (kept_partitioned) group->full_params = Tensor();
    groups.push_back(std::move(group));
  }
  return groups;
}

}  // namespace zt::dist
