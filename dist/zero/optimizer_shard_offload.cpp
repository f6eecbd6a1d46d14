// The offloaded side of the optimizer shard (dist/zero/optimizer_shard.h): host masters, the
// update sub-group by sub-group on the host or through the swap files, and the copy of each
// updated run back into the (possibly swapped) owned parameters.
#include <fmt/format.h>

#include <map>
#include <utility>

#include "comm/mpi_runtime.h"
#include "core/factory.h"
#include "core/host_optimizer_kernels.h"
#include "core/ops/elementwise.h"
#include "dist/zero/host_offload.h"
#include "dist/zero/optimizer_shard.h"
#include "observe/trace_recorder.h"
#include "optim/adam.h"

namespace zt::dist {

// Every rank learns whether every rank could make and fill its swap files (a missing, read-only
// or full nvme_path): a rank that failed alone would otherwise leave the others waiting in the
// first collective of training.
void OptimizerShard::make_swap(const std::vector<Tensor>& masters) {
  std::vector<int64_t> numels;
  for (const Tensor& master : masters) numels.push_back(master.numel());
  std::string error;
  try {
    swap_ = std::make_unique<OptimizerStateSwap>(config_, control_.rank(), numels);
    swap_->initialize(masters);
  } catch (const std::exception& failure) {
    error = failure.what();
    swap_.reset();
  }
  Tensor failed =
      full({1}, error.empty() ? 0.0 : 1.0, {.dtype = DType::f64, .tag = MemoryTag::comm});
  control_.all_reduce(failed, comm::ReduceOperation::max);
  if (!error.empty()) throw std::invalid_argument(error);
  if (failed.item() != 0.0) {
    throw std::invalid_argument(
        "zero_optimization.offload_optimizer.nvme_path: the swap files failed on another rank");
  }
  for (const std::vector<RunPlace>& places : runs_)
    for (const RunPlace& place : places) reset_swapped_run_state(place, 0);
}

// Adam's state at `step` with zero moments (the swap files hold the real ones), made the way
// a checkpoint restores it and then parked.
void OptimizerShard::reset_swapped_run_state(const RunPlace& place, int64_t step) {
  Tensor zero = zeros({place.run.numel}, {.dtype = DType::f32, .tag = MemoryTag::swap_buffer});
  optimizer_->set_param_state(place.run.param_group, place.index,
                              {.tensors = {{"exp_avg", zero}, {"exp_avg_sq", zero}}, .step = step});
  park(place);
}

void OptimizerShard::park(const RunPlace& place) {
  rebind_to_storage(run_group(place).params[place.index], parked_, 0);
  for (auto& [name, tensor] : optimizer_->param_state(place.run.param_group, place.index).tensors)
    rebind_to_storage(tensor, parked_, 0);
}

// The host master of the owned slice (its moments follow it: optim/ makes a parameter's state
// where the parameter is, under the offload tag when it is host-resident) and the host buffer
// the reducer streams the reduced gradient into. Both live as long as the engine, as
// DeepSpeed's pinned partitions do.
void OptimizerShard::make_offloaded_master(FlatGroupBuffers& group) {
  const Shape& sizes = group.owned_params.sizes();
  group.master_params = offload_buffer(sizes, DType::f32, MemoryTag::optim_state_offload, device_);
  copy_across(group.master_params, group.owned_params);
  group.master_grads = offload_buffer(sizes, DType::f32, MemoryTag::grad_offload, device_);
  ops::fill_(group.master_grads, 0.0);
}

// At stages 2 and 3 the owned gradient is a buffer of its own, so it can leave the device: the
// reducer adds each reduced slice into it on the host, in the model's dtype, exactly as it
// would have on the device (micro-batches accumulate with the same roundings). In fp32 it is
// the host fp32 gradient itself; in 16 bits a host copy in 16 bits that the accumulation
// boundary widens into the fp32 one. At stage 1 the owned gradient is a view of the full
// gradient buffer, which the model's .grad views, so it stays where it is.
void OptimizerShard::offload_owned_gradients(FlatGroupBuffers& group) {
  if (group.owned_grads.dtype() == DType::f32) {
    group.owned_grads = group.master_grads;
    return;
  }
  // Built in host memory already (build_flat_group_buffers' owned_grads_on_host).
  if (is_host_resident(group.owned_grads.storage()->tag())) return;
  group.owned_grads = offload_buffer(group.owned_grads.sizes(), group.owned_grads.dtype(),
                                     MemoryTag::grad_offload, device_);
  ops::fill_(group.owned_grads, 0.0);
}

// Sub-group by sub-group: the optimizer steps the runs whose gradients are attached, so each
// step sees only sub-group s; its updated values then go back to the device's parameters.
void OptimizerShard::update_offloaded() {
  const bool one_pass = one_pass_update_applies();
  for (size_t s = 0; s < sub_group_count_; ++s) {
    observe::TraceSpan span(
        observe::TraceRecorder::recording() ? fmt::format("optimizer sub-group {}", s) : "",
        "optimizer", observe::TraceTrack::optimizer);
    if (one_pass) {
      update_sub_group_one_pass(s);
      continue;
    }
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (const RunPlace& place : runs_[g]) {
        if (place.sub_group != s) continue;
        run_group(place).params[place.index].set_grad(
            flat_range(groups_[g]->master_grads, place.run.begin, place.run.numel));
      }
    }
    optimizer_->step();
    for (size_t g = 0; g < groups_.size(); ++g) {
      FlatGroupBuffers& group = *groups_[g];
      for (const RunPlace& place : runs_[g]) {
        if (place.sub_group != s) continue;
        run_group(place).params[place.index].set_grad(Tensor());
        copy_across(owned_run_for_update(g, place),
                    flat_range(group.master_params, place.run.begin, place.run.numel));
        finish_run_update(g);
      }
    }
  }
}

// The 16-bit parameters must be host memory the kernel can write (on a GPU they are, with
// offload_param "cpu"); swapped parameter slices keep the run-by-run path, which holds at most
// one of them in a swap buffer at a time.
bool OptimizerShard::one_pass_update_applies() const {
  if (!mixed_precision_ || parameter_swap_ != nullptr) return false;
  if (dynamic_cast<const optim::Adam*>(optimizer_.get()) == nullptr) return false;
  for (const auto& group : groups_) {
    DType dtype = group->owned_params.dtype();
    if (!group->owned_params.device().is_cpu() || (dtype != DType::bf16 && dtype != DType::f16))
      return false;
  }
  return true;
}

// optim::Adam::step's update of sub-group `sub_group`'s runs, batched by parameter group and
// update number as it batches them, with the same f32 constants, and each run's 16-bit
// parameter written by the kernel (the bits of the f32 update followed by a cast, which is
// what the separate copy made).
void OptimizerShard::update_sub_group_one_pass(size_t sub_group) {
  auto& adam = static_cast<optim::Adam&>(*optimizer_);
  struct Batch {
    std::vector<cpu::AdamRange> ranges;
    std::vector<optim::Adam::State*> states;
  };
  std::map<std::pair<size_t, int64_t>, Batch> batches;  // by (parameter group, update number)
  for (size_t g = 0; g < groups_.size(); ++g) {
    FlatGroupBuffers& group = *groups_[g];
    for (const RunPlace& place : runs_[g]) {
      if (place.sub_group != sub_group) continue;
      optim::Adam::State& state = adam.state_for_update(place.run.param_group, place.index);
      Tensor owned = flat_range(group.owned_params, place.run.begin, place.run.numel);
      Batch& batch = batches[{place.run.param_group, state.step + 1}];
      batch.ranges.push_back(
          {.params = run_group(place).params[place.index].data_ptr<float>(),
           .grads =
               flat_range(group.master_grads, place.run.begin, place.run.numel).data_ptr<float>(),
           .exp_avg = state.exp_avg.data_ptr<float>(),
           .exp_avg_sq = state.exp_avg_sq.data_ptr<float>(),
           .count = place.run.numel,
           .params16 = static_cast<uint16_t*>(owned.raw_data()),
           .half_dtype = owned.dtype()});
      batch.states.push_back(&state);
      runs_left_[g] -= 1;
    }
  }
  const optim::AdamOptions& options = adam.options();
  for (auto& [key, batch] : batches) {
    const optim::ParamGroup& param_group = adam.param_groups()[key.first];
    optim::AdamHyper hyper{param_group.lr,
                           options.beta1,
                           options.beta2,
                           options.eps,
                           param_group.weight_decay,
                           options.decoupled_weight_decay,
                           options.bias_correction,
                           key.second};
    cpu::adam_update_ranges(batch.ranges, optim::adam_step_constants(hyper));
    for (optim::Adam::State* state : batch.states) state->step = key.second;
  }
}

// Each sub-group as the swapper brings it in: the runs in it view its buffers (master, exp_avg,
// exp_avg_sq), the optimizer steps them, the master goes back to the device's parameters, and
// the runs are parked again before the buffers are written out.
void OptimizerShard::update_swapped() {
  const int64_t sub_group_size = swap_->sub_group_size();
  try {
    swap_for_each_update(sub_group_size);
  } catch (const std::exception& failure) {
    // A rank that cannot swap (a full disk) cannot finish the step, and the others would wait
    // for it in the next collective: the job ends, naming the file and the reason. The last
    // checkpoint is untouched (checkpoints never live in the swap folder).
    comm::abort_distributed_job(fmt::format("offload_optimizer \"nvme\": {}", failure.what()));
  }
}

void OptimizerShard::swap_for_each_update(int64_t sub_group_size) {
  swap_->for_each([&](size_t s, const std::vector<Tensor>& slots) {
    auto runs_in = [&](auto&& body) {
      for (size_t g = 0; g < groups_.size(); ++g)
        for (const RunPlace& place : runs_[g])
          if (place.sub_group == s) body(g, place);
    };
    runs_in([&](size_t g, const RunPlace& place) {
      int64_t at = swap_->group_start(g) + place.run.begin - int64_t(s) * sub_group_size;
      Tensor& param = run_group(place).params[place.index];
      rebind_to_storage(param, slots[OptimizerStateSwap::kMaster].storage(),
                        slots[OptimizerStateSwap::kMaster].storage_offset() + at);
      optim::ParamState state = optimizer_->param_state(place.run.param_group, place.index);
      for (size_t t = 0; t < state.tensors.size(); ++t) {
        const Tensor& slot = slots[t + 1];  // exp_avg, exp_avg_sq
        rebind_to_storage(state.tensors[t].second, slot.storage(), slot.storage_offset() + at);
      }
      param.set_grad(flat_range(groups_[g]->master_grads, place.run.begin, place.run.numel));
    });
    optimizer_->step();
    runs_in([&](size_t g, const RunPlace& place) {
      Tensor& param = run_group(place).params[place.index];
      param.set_grad(Tensor());
      copy_across(owned_run_for_update(g, place), param);
      finish_run_update(g);
      park(place);
    });
  });
}

Tensor OptimizerShard::owned_run_for_update(size_t g, const RunPlace& place) {
  if (parameter_swap_) parameter_swap_->bring_in(g, [] {});
  return flat_range(groups_[g]->owned_params, place.run.begin, place.run.numel);
}

void OptimizerShard::finish_run_update(size_t g) {
  runs_left_[g] -= 1;
  if (parameter_swap_ && runs_left_[g] == 0) parameter_swap_->send_out(g, /*changed=*/true);
}

}  // namespace zt::dist
