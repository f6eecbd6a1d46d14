// ZeRO stage 3's parameter movement: gathering a module's group before its forward and its
// backward, releasing it after each, prefetching along the first step's module order, and
// pointing gradients into the group's reduction buffer. Every gather is issued in the same
// order on every rank (the module order is the same everywhere).
#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "autograd/autograd_meta.h"
#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "dist/engine_internal.h"

namespace zt::dist {

void Engine::start_gather(size_t group_index) {
  GroupState& group = *groups_[group_index];
  if (group.gathered || group.gather_in_flight) return;
  group.full_storage->materialize();
  if (!group.full_params.defined()) {
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = group.full_storage;
    impl->sizes = {group.plan.padded_numel};
    impl->strides = {1};
    impl->dtype = model_dtype_;
    group.full_params = Tensor(impl);
  }
  group.gather_in_flight = data_parallel_->all_gather_async(group.owned_params, group.full_params);
  live_gathered_numel_ += group.plan.padded_numel;
  peak_gathered_numel_ = std::max(peak_gathered_numel_, live_gathered_numel_);
}

void Engine::gather_group(size_t group_index) {
  GroupState& group = *groups_[group_index];
  if (group.gathered && group.plan.partitioned) return;
  if (!group.plan.partitioned) group.gathered = false;  // persistent: refresh after an update
  start_gather(group_index);
  group.gather_in_flight->wait();
  group.gather_in_flight.reset();
  group.gathered = true;
  if (!group.plan.partitioned) live_gathered_numel_ -= group.plan.padded_numel;
}

void Engine::release_group(size_t group_index) {
  GroupState& group = *groups_[group_index];
  if (!group.plan.partitioned) return;
  if (group.gather_in_flight) {
    group.gather_in_flight->wait();  // a prefetch nobody used: let it land, then drop it
    group.gather_in_flight.reset();
  } else if (!group.gathered) {
    return;
  }
  group.gathered = false;
  group.full_params = Tensor();
  group.full_storage->release();
  live_gathered_numel_ -= group.plan.padded_numel;
}

// Starts gathering the groups that follow `group_index` in `trace` (the order the first step
// used them in), up to stage3_prefetch_bucket_size elements and without passing
// stage3_max_live_parameters gathered elements, so they arrive while this module computes.
void Engine::prefetch_after(const std::vector<size_t>& trace, size_t group_index) {
  const ZeroConfig& zero = config_.zero_optimization;
  auto position = std::find(trace.begin(), trace.end(), group_index);
  if (position == trace.end()) return;
  int64_t budget = zero.stage3_prefetch_bucket_size;
  for (auto next = position + 1; next != trace.end(); ++next) {
    GroupState& group = *groups_[*next];
    if (!group.plan.partitioned || group.gathered || group.gather_in_flight) continue;
    int64_t numel = group.plan.padded_numel;
    if (numel > budget || live_gathered_numel_ + numel > zero.stage3_max_live_parameters) break;
    start_gather(*next);
    budget -= numel;
  }
}

void Engine::register_stage3_module_hooks() {
  for (auto& [name, module] : model_->named_modules()) {
    size_t group_index = groups_.size();
    for (size_t g = 0; g < groups_.size(); ++g) {
      if (groups_[g]->plan.module_name == name) group_index = g;
    }
    if (group_index == groups_.size() || !groups_[group_index]->plan.partitioned) continue;
    nn::Module* raw = module.get();
    int64_t pre =
        raw->register_forward_pre_hook([this, group_index](nn::Module&, const nn::TensorList&) {
          gather_group(group_index);
          if (recording_traces_) forward_trace_.push_back(group_index);
          prefetch_after(forward_trace_, group_index);
        });
    int64_t post = raw->register_forward_hook(
        [this, group_index](nn::Module&, const nn::TensorList&, const nn::TensorList& outputs) {
          release_group(group_index);
          if (!autograd::is_grad_enabled()) return;
          // Gather again when backward reaches this call of the module: its gradient arrives
          // at the first of its outputs that backward reaches (once per call).
          auto reached = std::make_shared<bool>(false);
          for (const Tensor& output : outputs) {
            if (!output.defined() || !output.requires_grad()) continue;
            output.register_hook([this, group_index, reached](const Tensor&) {
              if (*reached) return Tensor();
              *reached = true;
              gather_group(group_index);
              collect_gradients_in_place(group_index);
              if (recording_traces_) backward_trace_.push_back(group_index);
              prefetch_after(backward_trace_, group_index);
              return Tensor();
            });
          }
        });
    module_hook_handles_.push_back({raw, {pre, post}});
  }
}

// Points the group's parameters' .grad at a fresh zeroed group buffer, so autograd
// accumulates into it directly instead of into a buffer of its own that is then copied.
void Engine::collect_gradients_in_place(size_t group_index) {
  GroupState& group = *groups_[group_index];
  if (!in_backward_ || group.full_grads.defined() || group.reduced) return;
  group.full_grads = zeros({group.plan.padded_numel},
                           {.dtype = model_dtype_, .device = device_, .tag = MemoryTag::grad});
  for (PlannedParam& entry : group.plan.params) {
    if (entry.param.grad().defined()) continue;
    entry.param.set_grad(
        ops::view(flat_range(group.full_grads, entry.offset, entry.numel), entry.param.sizes()));
  }
}

}  // namespace zt::dist
