// Gathering, releasing and prefetching parameter groups, and publishing updated slices
// (dist/zero/parameter_gatherer.h).
#include "dist/zero/parameter_gatherer.h"

#include <algorithm>
#include <memory>

#include "autograd/grad_mode.h"
#include "core/allocator.h"
#include "core/ops/elementwise.h"

namespace zt::dist {

ParameterGatherer::ParameterGatherer(ZeroPartitioning partitioning, const ZeroConfig& zero,
                                     comm::Communicator& data_parallel, FlatGroupList& groups,
                                     DType model_dtype)
    : partitioning_(partitioning),
      zero_(zero),
      data_parallel_(data_parallel),
      groups_(groups),
      model_dtype_(model_dtype) {}

ParameterGatherer::~ParameterGatherer() {
  for (auto& [module, handles] : module_hook_handles_) {
    for (int64_t handle : handles) module->remove_hook(handle);
  }
}

void ParameterGatherer::start_gather(size_t group_index) {
  FlatGroupBuffers& group = *groups_[group_index];
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
  group.gather_in_flight = data_parallel_.all_gather_async(group.owned_params, group.full_params);
  live_gathered_numel_ += group.plan.padded_numel;
  peak_gathered_numel_ = std::max(peak_gathered_numel_, live_gathered_numel_);
}

void ParameterGatherer::gather_group(size_t group_index) {
  FlatGroupBuffers& group = *groups_[group_index];
  if (group.gathered && group.plan.partitioned) return;
  if (!group.plan.partitioned) group.gathered = false;  // persistent: refresh after an update
  start_gather(group_index);
  group.gather_in_flight->wait();
  group.gather_in_flight.reset();
  group.gathered = true;
  if (!group.plan.partitioned) live_gathered_numel_ -= group.plan.padded_numel;
}

void ParameterGatherer::release_group(size_t group_index) {
  FlatGroupBuffers& group = *groups_[group_index];
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

void ParameterGatherer::gather_all() {
  for (size_t g = 0; g < groups_.size(); ++g) gather_group(g);
}

void ParameterGatherer::release_all() {
  for (size_t g = 0; g < groups_.size(); ++g) release_group(g);
}

// Starts gathering the groups that follow `group_index` in `trace` (the order the first step
// used them in), up to stage3_prefetch_bucket_size elements and without passing
// stage3_max_live_parameters gathered elements, so they arrive while this module computes.
void ParameterGatherer::prefetch_after(const std::vector<size_t>& trace, size_t group_index) {
  auto position = std::find(trace.begin(), trace.end(), group_index);
  if (position == trace.end()) return;
  int64_t budget = zero_.stage3_prefetch_bucket_size;
  for (auto next = position + 1; next != trace.end(); ++next) {
    FlatGroupBuffers& group = *groups_[*next];
    if (!group.plan.partitioned || group.gathered || group.gather_in_flight) continue;
    int64_t numel = group.plan.padded_numel;
    if (numel > budget || live_gathered_numel_ + numel > zero_.stage3_max_live_parameters) break;
    start_gather(*next);
    budget -= numel;
  }
}

void ParameterGatherer::register_module_hooks(nn::Module& model,
                                              std::function<void(size_t)> before_group_backward) {
  for (auto& [name, module] : model.named_modules()) {
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
    int64_t post = raw->register_forward_hook([this, group_index, before_group_backward](
                                                  nn::Module&, const nn::TensorList&,
                                                  const nn::TensorList& outputs) {
      release_group(group_index);
      if (!autograd::is_grad_enabled()) return;
      // Gather again when backward reaches this call of the module: its gradient arrives at
      // the first of its outputs that backward reaches (once per call).
      auto reached = std::make_shared<bool>(false);
      for (const Tensor& output : outputs) {
        if (!output.defined() || !output.requires_grad()) continue;
        output.register_hook([this, group_index, before_group_backward, reached](const Tensor&) {
          if (*reached) return Tensor();
          *reached = true;
          gather_group(group_index);
          before_group_backward(group_index);
          if (recording_traces_) backward_trace_.push_back(group_index);
          prefetch_after(backward_trace_, group_index);
          return Tensor();
        });
      }
    });
    module_hook_handles_.push_back({raw, {pre, post}});
  }
}

void ParameterGatherer::publish_updated_parameters() {
  if (partitioning_.parameters) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      if (!groups_[g]->plan.partitioned) gather_group(g);  // persistent groups stay current
    }
  } else if (partitioning_.optimizer_states) {
    all_gather_owned_slices();
  }
}

void ParameterGatherer::all_gather_owned_slices() {
  for (auto& group : groups_) {
    MemoryTagGuard as_comm(MemoryTag::comm);
    // The collective may not read and write overlapping buffers, so the slice goes out from a
    // copy.
    Tensor outgoing = ops::clone(group->owned_params);
    data_parallel_.all_gather(outgoing, group->full_params);
  }
}

}  // namespace zt::dist
