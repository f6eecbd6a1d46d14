// Gathering, releasing and prefetching parameter groups, and publishing updated slices
// (dist/zero/parameter_gatherer.h).
#include "dist/zero/parameter_gatherer.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>

#include "autograd/grad_mode.h"
#include "comm/mpi_runtime.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "dist/zero/stage3_diagnostics.h"
#include "observe/trace_recorder.h"

namespace zt::dist {

ParameterGatherer::ParameterGatherer(ZeroPartitioning partitioning, const ZeroConfig& zero,
                                     comm::Communicator& data_parallel, FlatGroupList& groups,
                                     DType model_dtype)
    : partitioning_(partitioning),
      zero_(zero),
      data_parallel_(data_parallel),
      groups_(groups),
      model_dtype_(model_dtype),
      running_readers_(groups.size(), 0),
      reader_labels_(groups.size()) {
  for (auto& group : groups_)
    owner_labels_.push_back(fmt::format("module '{}'", group->plan.module_name));
}

ParameterGatherer::~ParameterGatherer() {
  for (auto& [module, handles] : module_hook_handles_) {
    for (int64_t handle : handles) module->remove_hook(handle);
  }
  for (auto& group : groups_) {
    if (group->full_storage) group->full_storage->set_released_describer({});
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
  if (parameter_swap_)
    parameter_swap_->bring_in(group_index, [this] { finish_a_swapped_gather(); });
  // offload_param: the owned slice comes from host memory to the device for the collective.
  const Tensor* source = &group.owned_params;
  if (group.owned_params.device() != group.full_params.device()) {
    group.gather_source = empty(group.owned_params.sizes(), {.dtype = group.owned_params.dtype(),
                                                             .device = group.full_params.device(),
                                                             .tag = MemoryTag::comm});
    ops::copy_(group.gather_source, group.owned_params);
    source = &group.gather_source;
  }
  if (observe::TraceRecorder::recording()) {
    gather_started_us_.resize(groups_.size(), -1.0);
    gather_is_prefetch_.resize(groups_.size(), false);
    gather_started_us_[group_index] = observe::TraceRecorder::instance().now_us();
    gather_is_prefetch_[group_index] = starting_prefetch_;
  }
  group.gather_in_flight = data_parallel_.all_gather_async(*source, group.full_params);
  live_gathered_numel_ += group.plan.padded_numel;
  peak_gathered_numel_ = std::max(peak_gathered_numel_, live_gathered_numel_);
}

// Waits for the group's gather, at most stage3_gather_timeout: a rank alone in a gather (the
// others skipped this forward) would otherwise wait forever. Only the time spent here counts,
// so a prefetch started long before its use is not held to the bound while this rank computes.
// The job ends rather than throwing: unwinding would destroy the unfinished Work, which must
// wait for the collective.
void ParameterGatherer::finish_gather(size_t group_index) {
  FlatGroupBuffers& group = *groups_[group_index];
  if (!group.gather_in_flight->wait_for(zero_.stage3_gather_timeout)) {
    comm::abort_distributed_job(describe_unjoined_gather(
        owner_labels_[group_index], group.plan, zero_.stage3_gather_timeout, data_parallel_.rank(),
        data_parallel_.size()));
  }
  group.gather_in_flight.reset();
  group.gather_source = Tensor();
  if (parameter_swap_) parameter_swap_->send_out(group_index, /*changed=*/false);
  if (observe::TraceRecorder::recording()) trace_gather_finished(group_index);
}

// A span from the gather's start to here (where this rank first needs it or drops it).
void ParameterGatherer::trace_gather_finished(size_t group_index) {
  if (group_index >= gather_started_us_.size() || gather_started_us_[group_index] < 0) return;
  observe::TraceRecorder& recorder = observe::TraceRecorder::instance();
  double start_us = std::exchange(gather_started_us_[group_index], -1.0);
  bool prefetch = gather_is_prefetch_[group_index];
  const FlatGroupBuffers& group = *groups_[group_index];
  std::string owner = group_index < owner_labels_.size() ? owner_labels_[group_index]
                                                         : fmt::format("group {}", group_index);
  recorder.add({.name = fmt::format("{} {}", prefetch ? "prefetch" : "gather", owner),
                .category = prefetch ? "prefetch" : "gather",
                .track = observe::TraceTrack::parameters,
                .start_us = start_us,
                .duration_us = recorder.now_us() - start_us,
                .args = {{"group", group_index},
                         {"elements", group.plan.padded_numel},
                         {"bytes", group.plan.padded_numel * int64_t(dtype_size(model_dtype_))}}});
}

// Every swap buffer holds a slice whose gather is still in flight (prefetches): the first of
// them lands, which frees its buffer.
void ParameterGatherer::finish_a_swapped_gather() {
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!groups_[g]->gather_in_flight || !parameter_swap_->is_in(g)) continue;
    finish_gather(g);
    groups_[g]->gathered = true;
    return;
  }
}

void ParameterGatherer::gather_group(size_t group_index) {
  FlatGroupBuffers& group = *groups_[group_index];
  if (group.gathered && group.plan.partitioned) return;
  if (!group.plan.partitioned) group.gathered = false;  // persistent: refresh after an update
  start_gather(group_index);
  finish_gather(group_index);
  group.gathered = true;
  if (!group.plan.partitioned) live_gathered_numel_ -= group.plan.padded_numel;
}

void ParameterGatherer::release_group(size_t group_index) {
  FlatGroupBuffers& group = *groups_[group_index];
  if (!group.plan.partitioned || running_readers_[group_index] > 0) return;
  if (group.gather_in_flight) {
    finish_gather(group_index);  // a prefetch nobody used: let it land, then drop it
  } else if (!group.gathered) {
    return;
  }
  bool traced = observe::TraceRecorder::recording() && group_index < owner_labels_.size();
  observe::TraceSpan span(traced ? "release " + owner_labels_[group_index] : std::string(),
                          "release", observe::TraceTrack::parameters);
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

// During the first step: records the gather. Afterwards: finds it in the trace from where the
// step is (a group read by two modules appears twice) and starts gathering the groups that
// follow, up to stage3_prefetch_bucket_size elements and without passing
// stage3_max_live_parameters gathered elements, so they arrive while this module computes.
void ParameterGatherer::record_and_prefetch(GatherTrace& trace, size_t group_index) {
  if (recording_traces_) {
    trace.order.push_back(group_index);
    return;
  }
  auto cursor = trace.order.begin() + std::ptrdiff_t(trace.cursor);
  auto position = std::find(cursor, trace.order.end(), group_index);
  if (position == trace.order.end()) {
    position = std::find(trace.order.begin(), cursor, group_index);
    if (position == cursor) return;  // not gathered during the first step
  }
  trace.cursor = size_t(position - trace.order.begin()) + 1;
  int64_t budget = zero_.stage3_prefetch_bucket_size;
  for (auto next = position + 1; next != trace.order.end(); ++next) {
    FlatGroupBuffers& group = *groups_[*next];
    if (!group.plan.partitioned || group.gathered || group.gather_in_flight) continue;
    int64_t numel = group.plan.padded_numel;
    if (numel > budget || live_gathered_numel_ + numel > zero_.stage3_max_live_parameters) break;
    starting_prefetch_ = true;
    start_gather(*next);
    starting_prefetch_ = false;
    budget -= numel;
  }
  // offload_param "nvme": reads of the groups after those start now, into spare buffers.
  if (!parameter_swap_) return;
  for (auto next = position + 1; next != trace.order.end(); ++next) {
    if (parameter_swap_->free_buffers() < 2) break;
    FlatGroupBuffers& group = *groups_[*next];
    if (!group.gathered && !group.gather_in_flight) parameter_swap_->read_ahead(*next);
  }
}

void ParameterGatherer::enter_module(const std::string& label, const std::vector<size_t>& groups) {
  running_modules_.push_back(&label);
  for (size_t g : groups) {
    gather_group(g);
    running_readers_[g] += 1;
    record_and_prefetch(forward_trace_, g);
  }
}

void ParameterGatherer::leave_module(const std::vector<size_t>& groups,
                                     const nn::TensorList& outputs) {
  for (size_t g : groups) {
    running_readers_[g] -= 1;
    release_group(g);
  }
  if (!running_modules_.empty()) running_modules_.pop_back();
  if (groups.empty() || !autograd::is_grad_enabled()) return;
  // Gather again when backward reaches this call of the module: its gradient arrives at the
  // first of its outputs that backward reaches (once per call).
  auto reached = std::make_shared<bool>(false);
  for (const Tensor& output : outputs) {
    if (!output.defined() || !output.requires_grad()) continue;
    output.register_hook([this, groups, reached](const Tensor&) {
      if (*reached) return Tensor();
      *reached = true;
      gather_for_backward(groups);
      return Tensor();
    });
  }
}

void ParameterGatherer::gather_for_backward(const std::vector<size_t>& groups) {
  for (size_t g : groups) {
    gather_group(g);
    before_group_backward_(g);
    record_and_prefetch(backward_trace_, g);
  }
}

// Labels every group's owner and readers for the messages, and lets each partitioned buffer
// say which parameter a read of it while released was after.
void ParameterGatherer::name_groups(nn::Module& model,
                                    const std::vector<ModuleGroups>& module_groups) {
  std::map<std::string, std::string> labels;
  for (auto& [name, module] : model.named_modules())
    labels[name] = module_label(name, module->type_name());
  for (const ModuleGroups& reads : module_groups) {
    for (size_t g : reads.groups) reader_labels_[g].push_back(labels.at(reads.module_name));
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    FlatGroupBuffers& group = *groups_[g];
    owner_labels_[g] = labels.at(group.plan.module_name);
    if (!group.plan.partitioned) continue;
    size_t element_bytes = dtype_size(model_dtype_);
    group.full_storage->set_released_describer([this, g, element_bytes](size_t byte_offset) {
      return describe_released_parameter(groups_[g]->plan, int64_t(byte_offset / element_bytes),
                                         reader_labels_[g],
                                         running_modules_.empty() ? "" : *running_modules_.back());
    });
  }
}

void ParameterGatherer::register_module_hooks(nn::Module& model,
                                              const std::vector<ModuleGroups>& module_groups,
                                              std::function<void(size_t)> before_group_backward) {
  before_group_backward_ = std::move(before_group_backward);
  name_groups(model, module_groups);
  std::map<std::string, std::vector<size_t>> partitioned_reads;
  for (const ModuleGroups& reads : module_groups) {
    for (size_t g : reads.groups) {
      if (groups_[g]->plan.partitioned) partitioned_reads[reads.module_name].push_back(g);
    }
  }
  // Every module gets the pair of hooks: those that read no partitioned group only keep the
  // running-module stack that messages name.
  for (auto& [name, module] : model.named_modules()) {
    std::vector<size_t> groups = partitioned_reads[name];
    // On the heap, so that the running-module stack may point at it wherever the hook moves.
    auto label = std::make_shared<const std::string>(module_label(name, module->type_name()));
    nn::Module* raw = module.get();
    int64_t pre =
        raw->register_forward_pre_hook([this, groups, label](nn::Module&, const nn::TensorList&) {
          enter_module(*label, groups);
        });
    int64_t post = raw->register_forward_hook(
        [this, groups](nn::Module&, const nn::TensorList&, const nn::TensorList& outputs) {
          leave_module(groups, outputs);
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
