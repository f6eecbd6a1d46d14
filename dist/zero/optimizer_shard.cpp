// Master weights, the optimizer over owned slices, the update, and the overflow check and norm
// over owned gradients (dist/zero/optimizer_shard.h); the offloaded side is in
// dist/zero/optimizer_shard_offload.cpp.
#include "dist/zero/optimizer_shard.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "comm/mpi_runtime.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/storage.h"
#include "dist/config_builders.h"
#include "dist/zero/host_offload.h"

namespace zt::dist {
namespace {

// A 1-d f32 tensor of `numel` elements over `parked` (an empty buffer): a run of the NVMe
// optimizer between updates, which is rebound to a swap buffer before anything reads it.
Tensor parked_run(const Storage& parked, int64_t numel) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = parked;
  impl->sizes = {numel};
  impl->strides = {1};
  impl->dtype = DType::f32;
  return Tensor(std::move(impl));
}

}  // namespace

OptimizerShard::OptimizerShard(ZeroPartitioning partitioning, const Config& config,
                               FlatGroupList& groups, const ResolvedParamGroups& param_groups,
                               Device device, bool mixed_precision, comm::Communicator& control,
                               comm::Communicator& data_parallel_host)
    : partitioning_(partitioning),
      config_(config),
      groups_(groups),
      device_(device),
      mixed_precision_(mixed_precision),
      offload_(config.zero_optimization.offload_optimizer.enabled()),
      control_(control),
      data_parallel_host_(data_parallel_host) {
  autograd::NoGradGuard no_grad;  // the runs are leaves of their own, views of the slices
  if (offload_ && !config_.optimizer.is_adam()) {
    throw std::invalid_argument(fmt::format(
        "{}: zero_optimization.offload_optimizer: the host optimizer is Adam or AdamW, but the "
        "optimizer block asks for {}",
        config_.source_name, config_.optimizer.type));
  }
  std::vector<optim::ParamGroup> optimizer_groups(param_groups.groups.size());
  auto group_of = [&](const std::string& name) { return param_groups.group_of_param(name); };
  int64_t slice_start = 0;  // of this group's owned slice among all owned elements
  const int64_t sub_group_size = config_.zero_optimization.sub_group_size;
  const bool nvme = config_.zero_optimization.offload_optimizer.to_nvme();
  std::vector<Tensor> nvme_masters;  // the initial masters, until they are in the swap files
  if (nvme) parked_ = std::make_shared<StorageImpl>(0, cpu_allocator(), MemoryTag::swap_buffer);
  for (auto& group : groups_) {
    if (nvme) {
      nvme_masters.push_back(
          empty(group->owned_params.sizes(), {.dtype = DType::f32, .tag = MemoryTag::swap_buffer}));
      copy_across(nvme_masters.back(), group->owned_params);
      group->master_grads =
          offload_buffer(group->owned_params.sizes(), DType::f32, MemoryTag::grad_offload, device_);
      ops::fill_(group->master_grads, 0.0);
    } else if (offload_) {
      make_offloaded_master(*group);
    } else if (mixed_precision_) {
      group->master_params =
          empty(group->owned_params.sizes(),
                {.dtype = DType::f32, .device = device_, .tag = MemoryTag::optim_state});
      ops::copy_(group->master_params, group->owned_params);
    }
    if (offload_ && partitioning_.gradients) offload_owned_gradients(*group);
    const Tensor& update_params = group->update_params();
    int64_t owned_begin =
        partitioning_.optimizer_states ? group->plan.slice_begin(control_.rank()) : 0;
    std::vector<RunPlace>& places = runs_.emplace_back();
    std::vector<OwnedRun> runs =
        owned_runs(group->plan, owned_begin, update_params.numel(), group_of);
    for (const SubGroupRun& piece : cut_at_sub_groups(runs, slice_start, sub_group_size)) {
      const OwnedRun& run = piece.run;
      std::vector<Tensor>& run_params = optimizer_groups[run.param_group].params;
      places.push_back({run, run_params.size(), piece.sub_group});
      sub_group_count_ = std::max(sub_group_count_, piece.sub_group + 1);
      run_params.push_back(nvme ? parked_run(parked_, run.numel)
                                : flat_range(update_params, run.begin, run.numel));
      run_params.back().set_requires_grad(true);
      // Mixed precision and offload: the update's gradients are attached only during an update.
      if (!group->master_params.defined() && !offload_)
        run_params.back().set_grad(flat_range(group->owned_grads, run.begin, run.numel));
    }
    slice_start += update_params.numel();
  }
  optimizer_ = make_shard_optimizer(std::move(optimizer_groups));
  apply_param_groups(*optimizer_, param_groups);
  attach_lamb_norms();
  if (nvme) make_swap(nvme_masters);
}

void OptimizerShard::attach_run_gradients(size_t group, bool attach) {
  for (const RunPlace& place : runs_[group]) {
    Tensor grad = attach
                      ? flat_range(groups_[group]->update_grads(), place.run.begin, place.run.numel)
                      : Tensor();
    run_group(place).params[place.index].set_grad(grad);
  }
}

void OptimizerShard::make_master_gradients(double loss_scale) {
  double unscale = 1.0 / loss_scale;
  for (auto& group : groups_) {
    if (offload_) {
      // The reducer already streamed the gradient into the host buffer.
      if (unscale != 1.0) ops::mul_(group->master_grads, unscale);
      continue;
    }
    group->master_grads = empty(group->owned_grads.sizes(),
                                {.dtype = DType::f32, .device = device_, .tag = MemoryTag::grad});
    ops::copy_(group->master_grads, group->owned_grads);
    if (unscale != 1.0) ops::mul_(group->master_grads, unscale);
  }
  if (offload_) return;  // attached one sub-group at a time by the update
  for (size_t g = 0; g < groups_.size(); ++g) attach_run_gradients(g, true);
}

void OptimizerShard::drop_master_gradients() {
  if (offload_) return;  // the host gradient buffers stay for the next step
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!groups_[g]->master_grads.defined()) continue;
    attach_run_gradients(g, false);
    groups_[g]->master_grads = Tensor();
  }
}

void OptimizerShard::combine_over(comm::Communicator& control) {
  model_parallel_controls_.push_back(&control);
}

void OptimizerShard::exclude_from_norm(
    std::vector<std::vector<std::pair<int64_t, int64_t>>> ranges) {
  norm_excluded_ranges_ = std::move(ranges);
}

void OptimizerShard::append_counted_parts(size_t g, const Tensor& piece, int64_t base,
                                          std::vector<Tensor>& parts) const {
  if (g >= norm_excluded_ranges_.size() || norm_excluded_ranges_[g].empty()) {
    parts.push_back(piece);
    return;
  }
  const int64_t end = base + piece.numel();
  int64_t at = base;
  for (const auto& [begin, numel] : norm_excluded_ranges_[g]) {
    const int64_t skip_begin = std::max(begin, base), skip_end = std::min(begin + numel, end);
    if (skip_begin >= skip_end) continue;
    if (skip_begin > at) parts.push_back(flat_range(piece, at - base, skip_begin - at));
    at = skip_end;
  }
  if (at < end) parts.push_back(flat_range(piece, at - base, end - at));
}

std::vector<double> OptimizerShard::local_square_sums() {
  // Each piece (a rank slice, or the owned slice) is one sum, made of its counted parts.
  std::vector<Tensor> parts;
  std::vector<size_t> parts_per_sum;
  auto add_piece = [&](size_t g, const Tensor& piece, int64_t base) {
    const size_t before = parts.size();
    append_counted_parts(g, piece, base, parts);
    parts_per_sum.push_back(parts.size() - before);
  };
  int world = control_.size();
  for (size_t g = 0; g < groups_.size(); ++g) {
    const auto& group = groups_[g];
    if (!partitioning_.optimizer_states) {
      for (int r = 0; r < world; ++r) {
        add_piece(g,
                  flat_range(group->update_grads(), group->plan.slice_begin(r),
                             group->plan.slice_numel()),
                  group->plan.slice_begin(r));
      }
    } else {
      const Tensor& owned = group->update_grads();
      const bool sliced = owned.numel() == group->plan.slice_numel() && world > 1;
      add_piece(g, owned, sliced ? group->plan.slice_begin(control_.rank()) : 0);
    }
  }
  std::vector<double> part_sums = ops::sum_of_squares(parts);
  std::vector<double> sums;
  size_t next = 0;
  for (size_t count : parts_per_sum) {
    double total = 0.0;
    for (size_t i = 0; i < count; ++i) total += part_sums[next++];
    sums.push_back(total);
  }
  return sums;
}

// Each rank checks what it updates (its owned slice, through its sums of squares), and the
// flags are combined so that every rank skips the same steps.
bool OptimizerShard::gradients_overflowed(const std::vector<double>& square_sums) {
  double local = 0.0;
  for (double sum : square_sums) {
    if (!std::isfinite(sum)) local = 1.0;
  }
  Tensor flag = full({1}, local, {.dtype = DType::f64, .tag = MemoryTag::comm});
  control_.all_reduce(flag, comm::ReduceOperation::max);
  // Every rank of the world takes the same decision: the tensor ranks and stages agree too.
  for (comm::Communicator* control : model_parallel_controls_)
    control->all_reduce(flag, comm::ReduceOperation::max);
  return flag.item() != 0.0;
}

double OptimizerShard::global_grad_norm(const std::vector<double>& square_sums) {
  // Sums of squares per rank slice of every group, in double, combined in rank order: the
  // same arithmetic with and without P_os, so the clipping coefficient is bitwise the same.
  int world = control_.size();
  std::vector<double> partials(size_t(world), 0.0);
  if (!partitioning_.optimizer_states) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (int r = 0; r < world; ++r)
        partials[size_t(r)] += square_sums[g * size_t(world) + size_t(r)];
    }
  } else {
    double mine = 0.0;
    for (double sum : square_sums) mine += sum;
    Tensor gathered = empty({world}, {.dtype = DType::f64, .tag = MemoryTag::comm});
    Tensor local = full({1}, mine, {.dtype = DType::f64, .tag = MemoryTag::comm});
    control_.all_gather(local, gathered);
    std::vector<double> values = gathered.to_vector();
    for (int r = 0; r < world; ++r) partials[size_t(r)] = values[size_t(r)];
  }
  double total = 0.0;
  for (double partial : partials) total += partial;
  // Each tensor rank's total holds its shards (and, on tensor rank 0, the replicated
  // parameters once), each stage's its layers (a tied copy on one stage only): their sum is
  // the whole model's.
  for (comm::Communicator* control : model_parallel_controls_) {
    Tensor sum = full({1}, total, {.dtype = DType::f64, .tag = MemoryTag::comm});
    control->all_reduce(sum);
    total = sum.item();
  }
  return std::sqrt(total);
}

void OptimizerShard::update(double grad_norm) {
  if (config_.gradient_clipping > 0.0) {
    // torch.nn.utils.clip_grad_norm_'s (and DeepSpeed's) rule: scale by the coefficient
    // whenever it is below 1, which includes norms up to 1e-6 below the bound.
    const double coefficient = config_.gradient_clipping / (grad_norm + 1e-6);
    if (coefficient < 1.0) scale_update_gradients(coefficient);
  }
  runs_left_.clear();
  for (const std::vector<RunPlace>& places : runs_) runs_left_.push_back(places.size());
  if (swap_) {
    update_swapped();
    return;
  }
  if (offload_) {
    update_offloaded();
    return;
  }
  optimizer_->step();
  if (mixed_precision_) copy_master_to_parameters();
}

void OptimizerShard::scale_update_gradients(double factor) {
  for (auto& group : groups_) ops::mul_(group->update_grads(), factor);
}

// Rounds each updated fp32 master slice into the 16-bit parameters it shadows.
void OptimizerShard::copy_master_to_parameters() {
  for (auto& group : groups_) ops::copy_(group->owned_params, group->master_params);
}

Tensor OptimizerShard::master_slice(size_t group) const {
  if (swap_) return swap_->read_group(group, OptimizerStateSwap::kMaster);
  return groups_.at(group)->update_params();
}

void OptimizerShard::set_master_slice(size_t group, const Tensor& values) {
  if (swap_) {
    swap_->write_group(group, OptimizerStateSwap::kMaster, values);
    return;
  }
  ops::copy_(groups_.at(group)->update_params(), values);
}

int64_t OptimizerShard::nvme_bytes() const {
  return swap_ ? swap_->file_bytes() : 0;
}

optim::ParamState OptimizerShard::slice_state(size_t group) const {
  if (swap_) {
    // Every run of the slice has the same step (all are stepped at every update).
    optim::ParamState first = optimizer_->param_state(runs_.at(group).front().run.param_group,
                                                      runs_.at(group).front().index);
    return {.tensors = {{"exp_avg", swap_->read_group(group, OptimizerStateSwap::kExpAvg)},
                        {"exp_avg_sq", swap_->read_group(group, OptimizerStateSwap::kExpAvgSq)}},
            .step = first.step};
  }
  const std::vector<RunPlace>& places = runs_.at(group);
  const optim::Optimizer& optimizer = *optimizer_;
  auto state_of = [&](const RunPlace& place) {
    return optimizer.param_state(place.run.param_group, place.index);
  };
  optim::ParamState first = state_of(places.front());
  optim::ParamState slice{.tensors = {}, .step = first.step};
  const Tensor& update_params = groups_[group]->update_params();
  for (const auto& [name, ignored] : first.tensors) {
    slice.tensors.emplace_back(
        name, zeros(update_params.sizes(), {.dtype = DType::f32, .device = device_}));
  }
  for (const RunPlace& place : places) {
    optim::ParamState state = state_of(place);
    // Every run is stepped at every update, so the runs of a slice agree on their state.
    if (state.step != first.step || state.tensors.size() != first.tensors.size()) {
      throw std::logic_error(
          fmt::format("optimizer shard: the runs of group {} differ in optimizer state", group));
    }
    for (size_t t = 0; t < state.tensors.size(); ++t) {
      ops::copy_(flat_range(slice.tensors[t].second, place.run.begin, place.run.numel),
                 state.tensors[t].second);
    }
  }
  return slice;
}

void OptimizerShard::set_slice_state(size_t group, const optim::ParamState& state) {
  if (swap_) {
    int64_t numel = swap_->read_group(group, OptimizerStateSwap::kMaster).numel();
    for (auto slot : {OptimizerStateSwap::kExpAvg, OptimizerStateSwap::kExpAvgSq}) {
      std::string name = slot == OptimizerStateSwap::kExpAvg ? "exp_avg" : "exp_avg_sq";
      Tensor values = zeros({numel}, {.dtype = DType::f32, .tag = MemoryTag::swap_buffer});
      for (const auto& [key, tensor] : state.tensors)
        if (key == name) ops::copy_(values, ops::reshape(tensor, {numel}));
      swap_->write_group(group, slot, values);
    }
    for (const RunPlace& place : runs_.at(group)) reset_swapped_run_state(place, state.step);
    return;
  }
  for (const RunPlace& place : runs_.at(group)) {
    optim::ParamState run_state{.tensors = {}, .step = state.step};
    for (const auto& [name, tensor] : state.tensors) {
      run_state.tensors.emplace_back(name, flat_range(ops::reshape(tensor, {tensor.numel()}),
                                                      place.run.begin, place.run.numel));
    }
    optimizer_->set_param_state(place.run.param_group, place.index, run_state);
  }
}

}  // namespace zt::dist
