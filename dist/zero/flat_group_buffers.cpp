// Building a group's flat buffers from the model's parameters (dist/zero/flat_group_buffers.h).
#include "dist/zero/flat_group_buffers.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"

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

void make_gradient_buffers(FlatGroupBuffers& group, ZeroPartitioning partitioning, DType dtype,
                           Device device, int rank) {
  int64_t slice = group.plan.slice_numel();
  int64_t slice_begin = group.plan.slice_begin(rank);
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
                                       comm::Communicator& data_parallel) {
  autograd::NoGradGuard no_grad;
  FlatGroupList groups;
  int rank = data_parallel.rank();
  for (const FlatGroup& planned : plan.groups) {
    auto group = std::make_unique<FlatGroupBuffers>();
    group->plan = planned;
    check_dtype(planned, dtype);
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
    make_gradient_buffers(*group, partitioning, dtype, device, rank);
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
