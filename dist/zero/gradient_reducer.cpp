// Gradient hooks, bucket reductions and their results (dist/zero/gradient_reducer.h).
#include "dist/zero/gradient_reducer.h"

#include <chrono>

#include "autograd/autograd_meta.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "dist/zero/host_offload.h"

namespace zt::dist {

GradientReducer::GradientReducer(ZeroPartitioning partitioning, const Config& config,
                                 comm::Communicator& data_parallel, FlatGroupList& groups,
                                 DType model_dtype, Device device, ParameterGatherer& gatherer,
                                 StepTimers& timers)
    : partitioning_(partitioning),
      config_(config),
      data_parallel_(data_parallel),
      groups_(groups),
      model_dtype_(model_dtype),
      device_(device),
      gatherer_(gatherer),
      timers_(timers) {
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t p = 0; p < groups_[g]->plan.params.size(); ++p) {
      autograd::register_grad_ready_hook(groups_[g]->plan.params[p].param,
                                         [this, g, p](const Tensor&) { on_gradient_ready(g, p); });
    }
  }
}

GradientReducer::~GradientReducer() {
  for (auto& group : groups_) {
    for (PlannedParam& entry : group->plan.params) autograd::clear_grad_ready_hooks(entry.param);
  }
}

Tensor GradientReducer::zeroed_full_grads(const FlatGroupBuffers& group) const {
  return zeros({group.plan.padded_numel},
               {.dtype = model_dtype_, .device = device_, .tag = MemoryTag::grad});
}

void GradientReducer::begin_backward(bool boundary) {
  for (auto& group : groups_) {
    group->pending_grads = int64_t(group->plan.params.size());
    group->reduced = false;
  }
  boundary_ = boundary;
  in_backward_ = true;
}

// P_g: moves a fresh gradient into the group's collection buffer and drops it from the param.
void GradientReducer::move_gradient_into_group(FlatGroupBuffers& group, PlannedParam& entry) {
  Tensor grad = entry.param.grad();
  if (!grad.defined()) return;
  bool accumulated_in_place =
      group.full_grads.defined() && grad.storage() == group.full_grads.storage();
  if (!accumulated_in_place) {
    if (!group.full_grads.defined()) group.full_grads = zeroed_full_grads(group);
    ops::add_(flat_range(group.full_grads, entry.offset, entry.numel),
              ops::reshape(grad, {entry.numel}));
  }
  entry.param.set_grad(Tensor());
}

void GradientReducer::on_gradient_ready(size_t group_index, size_t param_index) {
  if (!in_backward_) {
    // A backward the engine did not start (loss.backward()): its gradients are not reduced, so
    // the engine refuses to step on them (Engine::step says so).
    if (outside_backward_param_.empty())
      outside_backward_param_ = groups_[group_index]->plan.params[param_index].name;
    return;
  }
  if (config_.zero_optimization.overlap_comm) {
    // MPI moves non-blocking collectives forward only inside MPI calls: poke the ones in
    // flight so they progress while backward computes.
    for (auto& other : groups_) {
      if (other->in_flight) other->in_flight->test();
    }
  }
  FlatGroupBuffers& group = *groups_[group_index];
  if (partitioning_.gradients) move_gradient_into_group(group, group.plan.params[param_index]);
  group.pending_grads -= 1;
  // Without P_g the full buffers accumulate micro-batches, so only the boundary reduces.
  bool reduce_now = partitioning_.gradients || boundary_;
  if (group.pending_grads != 0 || !reduce_now) return;
  reduce_group(group_index);
  // The module's backward is over, so its gathered parameters can go now.
  if (partitioning_.parameters) gatherer_.release_group(group_index);
}

void GradientReducer::reduce_group(size_t group_index) {
  FlatGroupBuffers& group = *groups_[group_index];
  if (group.reduced) return;
  group.reduced = true;
  if (local_gradients_ && !partitioning_.optimizer_states) return;  // each rank keeps its own
  auto start = std::chrono::steady_clock::now();
  double world = double(data_parallel_.size());
  double predivide = config_.prescale_gradients ? world : config_.gradient_predivide_factor;
  if (partitioning_.gradients && !group.full_grads.defined()) {
    // No gradient reached this group in this backward: it still takes part (every rank must
    // issue the same collectives), contributing zeros.
    group.full_grads = zeroed_full_grads(group);
  }
  if (predivide != 1.0) ops::mul_(group.full_grads, 1.0 / predivide);
  if (!partitioning_.optimizer_states) {
    group.in_flight = data_parallel_.all_reduce_async(group.full_grads);
  } else {
    MemoryTagGuard as_comm(MemoryTag::comm);
    group.reduce_output =
        empty({group.plan.slice_numel()}, {.dtype = model_dtype_, .device = device_});
    group.in_flight = data_parallel_.reduce_scatter_async(group.full_grads, group.reduce_output);
    // With P_g no full gradient is kept: the Work holds what it still reads, and the buffer
    // goes as soon as the collective is done with it.
    if (partitioning_.gradients) group.full_grads = Tensor();
  }
  if (!config_.zero_optimization.overlap_comm) absorb_reduction(group_index);
  timers_.reduce += seconds_since(start);
}

// Waits for a group's reduction and moves its averaged result where the update reads it.
void GradientReducer::absorb_reduction(size_t group_index) {
  FlatGroupBuffers& group = *groups_[group_index];
  if (!group.in_flight) return;
  group.in_flight->wait();
  group.in_flight.reset();
  double world = double(data_parallel_.size());
  double postscale = config_.prescale_gradients ? 1.0 : config_.gradient_predivide_factor / world;
  if (!partitioning_.optimizer_states) {
    if (postscale != 1.0) ops::mul_(group.full_grads, postscale);
    return;
  }
  Tensor reduced =
      postscale != 1.0 ? ops::mul(group.reduce_output, postscale) : group.reduce_output;
  if (partitioning_.gradients) {
    // Accumulates over micro-batches; with offload in host memory, where the 16-bit slice
    // crosses first (the reduction's buffers are the only gradient bytes on the device).
    if (group.owned_grads.device() != reduced.device()) {
      Tensor arrived = empty(
          reduced.sizes(),
          {.dtype = reduced.dtype(), .device = group.owned_grads.device(), .tag = MemoryTag::comm});
      ops::copy_(arrived, reduced);
      reduced = arrived;
    }
    ops::add_(group.owned_grads, reduced);
  } else {
    ops::copy_(group.owned_grads, reduced);  // the full buffers accumulated them
  }
  group.reduce_output = Tensor();
  // offload_optimizer: the boundary's reduced slice is final; it goes to the host now, while
  // backward still runs, widened to fp32 there (the host optimizer's gradient).
  // In fp32 at stages 2 and 3 the owned gradient is that host buffer already.
  if (boundary_ && group.master_grads.defined() &&
      config_.zero_optimization.offload_optimizer.enabled() &&
      group.master_grads.storage() != group.owned_grads.storage())
    copy_across(group.master_grads, group.owned_grads);
}

void GradientReducer::end_backward() {
  in_backward_ = false;
  if (!partitioning_.gradients && !boundary_) return;
  auto start = std::chrono::steady_clock::now();
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!groups_[g]->reduced) reduce_group(g);  // unused parameters: reduce in plan order
    absorb_reduction(g);
    if (partitioning_.gradients) {
      // A parameter backward never reached still points into this backward's buffer.
      for (PlannedParam& entry : groups_[g]->plan.params) entry.param.set_grad(Tensor());
    }
    if (partitioning_.parameters) gatherer_.release_group(g);
  }
  if (partitioning_.parameters) gatherer_.release_all();  // unused prefetches
  timers_.reduce += seconds_since(start);
}

void GradientReducer::collect_gradients_in_place(size_t group_index) {
  FlatGroupBuffers& group = *groups_[group_index];
  if (!in_backward_ || group.full_grads.defined() || group.reduced) return;
  group.full_grads = zeroed_full_grads(group);
  for (PlannedParam& entry : group.plan.params) {
    if (entry.param.grad().defined()) continue;
    entry.param.set_grad(
        ops::view(flat_range(group.full_grads, entry.offset, entry.numel), entry.param.sizes()));
  }
}

void GradientReducer::zero_gradients() {
  for (auto& group : groups_) {
    if (partitioning_.gradients)
      ops::fill_(group->owned_grads, 0.0);
    else
      ops::fill_(group->full_grads, 0.0);
  }
}

}  // namespace zt::dist
