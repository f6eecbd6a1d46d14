// The training engine: flat buffers, gradient hooks, reductions and the update, per ZeRO stage.
#include "dist/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "autograd/autograd_meta.h"
#include "autograd/grad_mode.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"
#include "dist/config_builders.h"
#include "dist/engine_internal.h"

namespace zt::dist {

Engine::Engine(Config config, std::shared_ptr<nn::Module> model, comm::Communicator& data_parallel)
    : config_(std::move(config)), model_(std::move(model)), data_parallel_(&data_parallel) {
  if (!model_) throw std::invalid_argument("Engine: no model");
  if (config_.world_size != data_parallel_->size()) {
    throw std::invalid_argument(fmt::format(
        "Engine: {} was resolved for a data-parallel size of {}, but {} ranks are running",
        config_.source_name, config_.world_size, data_parallel_->size()));
  }
  if (!config_.optimizer.present) {
    throw std::invalid_argument(config_.source_name +
                                ": optimizer: the engine needs an optimizer block");
  }
  stage_ = config_.zero_optimization.stage;
  device_ = device_of_parameters(*model_);
  // Scalars (norms, overflow flags, losses) are host tensors: their communicator is the
  // host-memory one over the same ranks even when ZeRO traffic goes through NCCL.
  control_ = data_parallel_->host_communicator().split(0, data_parallel_->rank());
  if (config_.fp16.enabled) model_dtype_ = DType::f16;
  if (config_.bf16.enabled) model_dtype_ = DType::bf16;
  if (config_.fp16.enabled) {
    const Fp16Config& fp16 = config_.fp16;
    loss_scaler_ = std::make_unique<optim::LossScaler>(
        optim::LossScalerOptions{.static_scale = fp16.loss_scale,
                                 .initial_scale_power = fp16.initial_scale_power,
                                 .scale_window = fp16.loss_scale_window,
                                 .hysteresis = fp16.hysteresis,
                                 .consecutive_hysteresis = fp16.consecutive_hysteresis,
                                 .min_scale = fp16.min_loss_scale});
  }
  // As DeepSpeed's module.half() / .bfloat16(): parameters and buffers become 16-bit, and the
  // fp32 master weights start from those rounded values.
  if (mixed_precision()) model_->to(model_dtype_);
  build_groups();
  build_optimizer();
  register_gradient_hooks();
  if (stage_ == 3) register_stage3_module_hooks();
  data_parallel_->reset_stats();
  // Peaks count from here: building the model allocated it whole on every rank, which the
  // engine then partitioned (there is no partitioned construction like zero.Init yet).
  memory_accounting().reset_peak();
  last_log_time_ = std::chrono::steady_clock::now();
}

// The one device every parameter is on (the host when the model has none).
Device device_of_parameters(nn::Module& model) {
  NamedTensors params = model.named_parameters();
  if (params.empty()) return Device::cpu();
  Device device = params.front().second.device();
  for (auto& [name, param] : params) {
    if (param.device() == device) continue;
    throw std::invalid_argument(fmt::format(
        "Engine: parameter {} is on {}, but {} is on {}: move the model to one device first "
        "(module.to(device))",
        name, param.device().str(), params.front().first, device.str()));
  }
  return device;
}

MemoryAccounting& Engine::memory_accounting() const {
  return backend_for(device_).allocator(device_).accounting();
}

Engine::~Engine() {
  for (auto& [module, handles] : module_hook_handles_) {
    for (int64_t handle : handles) module->remove_hook(handle);
  }
  for (auto& group : groups_) {
    for (PlannedParam& entry : group->plan.params) autograd::clear_grad_ready_hooks(entry.param);
  }
}

void Engine::build_groups() {
  const ZeroConfig& zero = config_.zero_optimization;
  int world = world_size();
  plan_ = stage_ == 3 ? plan_by_module(*model_, world, zero.stage3_param_persistence_threshold)
                      : plan_by_bucket(model_->named_parameters(), zero.reduce_bucket_size, world);
  autograd::NoGradGuard no_grad;
  for (FlatGroup& planned : plan_.groups) {
    auto group = std::make_unique<GroupState>();
    group->plan = planned;
    DType dtype = model_dtype_;
    for (const PlannedParam& entry : planned.params) {
      if (entry.param.dtype() == dtype) continue;
      throw std::invalid_argument(fmt::format(
          "Engine: parameter {} is {}, but the config trains {} parameters (16-bit training "
          "is asked for with the fp16 or bf16 block, and the engine converts the model)",
          entry.name, dtype_name(entry.param.dtype()), dtype_name(dtype)));
    }
    group->full_params =
        zeros({planned.padded_numel}, {.dtype = dtype, .device = device_, .tag = MemoryTag::param});
    group->full_storage = group->full_params.storage();
    for (PlannedParam& entry : group->plan.params) {
      ops::copy_(flat_range(group->full_params, entry.offset, entry.numel),
                 ops::reshape(entry.param, {entry.numel}));
      rebind_to_storage(entry.param, group->full_storage, entry.offset);
    }
    // Every rank starts from rank 0's values, whatever its seed did.
    data_parallel_->broadcast(group->full_params, 0);
    int64_t slice = planned.slice_numel();
    int64_t slice_begin = planned.slice_begin(rank());
    if (stage_ == 0) {
      group->owned_params = group->full_params;
    } else if (stage_ < 3) {
      group->owned_params = flat_range(group->full_params, slice_begin, slice);
    } else {
      group->owned_params = ops::clone(flat_range(group->full_params, slice_begin, slice));
    }
    if (stage_ <= 1) {
      group->full_grads = zeros({planned.padded_numel},
                                {.dtype = dtype, .device = device_, .tag = MemoryTag::grad});
      group->owned_grads =
          stage_ == 0 ? group->full_grads : flat_range(group->full_grads, slice_begin, slice);
      for (PlannedParam& entry : group->plan.params) {
        entry.param.set_grad(ops::view(flat_range(group->full_grads, entry.offset, entry.numel),
                                       entry.param.sizes()));
      }
    } else {
      group->owned_grads =
          zeros({slice}, {.dtype = dtype, .device = device_, .tag = MemoryTag::grad});
    }
    if (stage_ == 3 && group->plan.partitioned) group->full_storage->release();
    group->gathered = !(stage_ == 3 && group->plan.partitioned);
    group->full_params = stage_ == 3 && group->plan.partitioned ? Tensor() : group->full_params;
    groups_.push_back(std::move(group));
  }
}

void Engine::build_optimizer() {
  std::vector<Tensor> owned;
  for (auto& group : groups_) {
    if (mixed_precision()) {
      group->master_params =
          empty(group->owned_params.sizes(),
                {.dtype = DType::f32, .device = device_, .tag = MemoryTag::optim_state});
      ops::copy_(group->master_params, group->owned_params);
    } else {
      group->owned_params.set_grad(group->owned_grads);
    }
    group->update_params().set_requires_grad(true);
    owned.push_back(group->update_params());
  }
  const OptimizerConfig& settings = config_.optimizer;
  optimizer_ =
      make_optimizer(settings, optim::single_group(owned, settings.lr, settings.weight_decay));
  if (config_.scheduler.present) schedule_ = make_schedule(config_.scheduler, *optimizer_);
}

void Engine::register_gradient_hooks() {
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t p = 0; p < groups_[g]->plan.params.size(); ++p) {
      autograd::register_grad_ready_hook(groups_[g]->plan.params[p].param,
                                         [this, g, p](const Tensor&) { on_gradient_ready(g, p); });
    }
  }
}

bool Engine::is_gradient_accumulation_boundary() const {
  return (micro_steps_ + 1) % config_.gradient_accumulation_steps == 0;
}

Tensor Engine::forward(const Tensor& input) {
  nn::TensorList outputs = forward(nn::TensorList{input});
  if (outputs.size() != 1) {
    throw std::invalid_argument(fmt::format(
        "Engine::forward: the model returned {} outputs; pass a TensorList to receive several",
        outputs.size()));
  }
  return outputs.front();
}

nn::TensorList Engine::forward(const nn::TensorList& inputs) {
  auto start = std::chrono::steady_clock::now();
  MemoryTagGuard as_activation(MemoryTag::activation);
  nn::TensorList model_inputs;
  model_inputs.reserve(inputs.size());
  for (const Tensor& input : inputs) {
    bool cast = input.defined() && is_floating(input.dtype()) && input.dtype() != model_dtype_;
    model_inputs.push_back(cast ? input.to(model_dtype_) : input);
  }
  nn::TensorList outputs = (*model_)(model_inputs);
  timers_.forward += seconds_since(start);
  return outputs;
}

Tensor Engine::backward(const Tensor& loss) {
  if (loss.numel() != 1) {
    throw std::invalid_argument(fmt::format(
        "Engine::backward: the loss must be a scalar, got shape {}", shape_str(loss.sizes())));
  }
  auto start = std::chrono::steady_clock::now();
  loss_sum_ += loss.item();
  for (auto& group : groups_) {
    group->pending_grads = int64_t(group->plan.params.size());
    group->reduced = false;
  }
  in_backward_ = true;
  {
    MemoryTagGuard as_activation(MemoryTag::activation);
    // Averaging over micro-batches and loss scaling happen in the gradient seed:
    // d(loss * scale / GAS) = scale / GAS, in f32 (2^16 is past f16's largest finite value).
    double seed = loss_scale() / double(config_.gradient_accumulation_steps);
    Tensor loss32 = loss.dtype() == DType::f32 ? loss : loss.to(DType::f32);
    loss32.backward(full(loss.sizes(), seed, {.dtype = DType::f32, .device = loss.device()}));
  }
  in_backward_ = false;
  finish_reductions();
  timers_.backward += seconds_since(start);
  return loss;
}

void Engine::on_gradient_ready(size_t group_index, size_t param_index) {
  if (!in_backward_) return;  // a backward the engine did not start (user code): ignore
  if (config_.zero_optimization.overlap_comm) {
    // MPI moves non-blocking collectives forward only inside MPI calls: poke the ones in
    // flight so they progress while backward computes.
    for (auto& other : groups_) {
      if (other->in_flight) other->in_flight->test();
    }
  }
  GroupState& group = *groups_[group_index];
  PlannedParam& entry = group.plan.params[param_index];
  if (stage_ >= 2) {
    // Move the fresh gradient into the group's collection buffer and drop it from the param.
    Tensor grad = entry.param.grad();
    if (grad.defined()) {
      bool accumulated_in_place =
          group.full_grads.defined() && grad.storage() == group.full_grads.storage();
      if (!accumulated_in_place) {
        if (!group.full_grads.defined()) {
          group.full_grads =
              zeros({group.plan.padded_numel},
                    {.dtype = model_dtype_, .device = device_, .tag = MemoryTag::grad});
        }
        ops::add_(flat_range(group.full_grads, entry.offset, entry.numel),
                  ops::reshape(grad, {entry.numel}));
      }
      entry.param.set_grad(Tensor());
    }
  }
  group.pending_grads -= 1;
  bool reduce_now = stage_ >= 2 || is_gradient_accumulation_boundary();
  if (group.pending_grads != 0 || !reduce_now) return;
  reduce_group(group_index);
  // Stage 3: the module's backward is over, so its gathered parameters can go now.
  if (stage_ == 3) release_group(group_index);
}

void Engine::reduce_group(size_t group_index) {
  GroupState& group = *groups_[group_index];
  if (group.reduced) return;
  group.reduced = true;
  auto start = std::chrono::steady_clock::now();
  double world = double(world_size());
  double predivide = config_.prescale_gradients ? world : config_.gradient_predivide_factor;
  if (stage_ >= 2 && !group.full_grads.defined()) {
    // No gradient reached this group in this backward: it still takes part (every rank must
    // issue the same collectives), contributing zeros.
    group.full_grads = zeros({group.plan.padded_numel},
                             {.dtype = model_dtype_, .device = device_, .tag = MemoryTag::grad});
  }
  if (predivide != 1.0) ops::mul_(group.full_grads, 1.0 / predivide);
  if (stage_ == 0) {
    group.in_flight = data_parallel_->all_reduce_async(group.full_grads);
  } else {
    MemoryTagGuard as_comm(MemoryTag::comm);
    group.reduce_output =
        empty({group.plan.slice_numel()}, {.dtype = model_dtype_, .device = device_});
    group.in_flight = data_parallel_->reduce_scatter_async(group.full_grads, group.reduce_output);
    // Stages 2-3 keep no full gradient: the Work holds what it still reads, and the buffer
    // goes as soon as the collective is done with it.
    if (stage_ >= 2) group.full_grads = Tensor();
  }
  if (!config_.zero_optimization.overlap_comm) absorb_reduction(group_index);
  timers_.reduce += seconds_since(start);
}

// Waits for a group's reduction and moves its averaged result where the update reads it.
void Engine::absorb_reduction(size_t group_index) {
  GroupState& group = *groups_[group_index];
  if (!group.in_flight) return;
  group.in_flight->wait();
  group.in_flight.reset();
  double world = double(world_size());
  double postscale = config_.prescale_gradients ? 1.0 : config_.gradient_predivide_factor / world;
  if (stage_ == 0) {
    if (postscale != 1.0) ops::mul_(group.full_grads, postscale);
    return;
  }
  Tensor reduced =
      postscale != 1.0 ? ops::mul(group.reduce_output, postscale) : group.reduce_output;
  if (stage_ == 1) {
    ops::copy_(group.owned_grads, reduced);
  } else {
    ops::add_(group.owned_grads, reduced);  // accumulates over micro-batches
  }
  group.reduce_output = Tensor();
}

// Reduces what backward did not reach and waits for every reduction.
void Engine::finish_reductions() {
  bool boundary = is_gradient_accumulation_boundary();
  if (stage_ <= 1 && !boundary) return;
  auto start = std::chrono::steady_clock::now();
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!groups_[g]->reduced) reduce_group(g);  // unused parameters: reduce in plan order
    absorb_reduction(g);
    if (stage_ >= 2) {
      // A parameter backward never reached still points into this backward's buffer.
      for (PlannedParam& entry : groups_[g]->plan.params) entry.param.set_grad(Tensor());
    }
    if (stage_ == 3) release_group(g);
  }
  if (stage_ == 3) {
    for (size_t g = 0; g < groups_.size(); ++g) release_group(g);  // unused prefetches
  }
  timers_.reduce += seconds_since(start);
}

// Sums of squares of what this rank updates, in one fused pass (one kernel launch on a GPU):
// at stage 0 one per group and rank slice (so that the norm is combined exactly as at the
// other stages), else one per group's owned slice. A non-finite sum is an inf or NaN gradient.
std::vector<double> Engine::local_square_sums() {
  std::vector<Tensor> pieces;
  for (auto& group : groups_) {
    if (stage_ == 0) {
      for (int r = 0; r < world_size(); ++r) {
        pieces.push_back(flat_range(group->update_grads(), group->plan.slice_begin(r),
                                    group->plan.slice_numel()));
      }
    } else {
      pieces.push_back(group->update_grads());
    }
  }
  return ops::sum_of_squares(pieces);
}

double Engine::global_grad_norm(const std::vector<double>& square_sums) {
  // Sums of squares per rank slice of every group, in double, combined in rank order: the
  // same arithmetic at every stage, so the clipping coefficient is bitwise the same.
  int world = world_size();
  std::vector<double> partials(size_t(world), 0.0);
  if (stage_ == 0) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (int r = 0; r < world; ++r)
        partials[size_t(r)] += square_sums[g * size_t(world) + size_t(r)];
    }
  } else {
    double mine = 0.0;
    for (double sum : square_sums) mine += sum;
    Tensor gathered = empty({world}, {.dtype = DType::f64, .tag = MemoryTag::comm});
    Tensor local = full({1}, mine, {.dtype = DType::f64, .tag = MemoryTag::comm});
    control_->all_gather(local, gathered);
    std::vector<double> values = gathered.to_vector();
    for (int r = 0; r < world; ++r) partials[size_t(r)] = values[size_t(r)];
  }
  double total = 0.0;
  for (double partial : partials) total += partial;
  return std::sqrt(total);
}

void Engine::scale_update_gradients(double factor) {
  for (auto& group : groups_) ops::mul_(group->update_grads(), factor);
}

// Mixed precision: the optimizer's fp32 gradients, unscaled, from the reduced 16-bit ones. They
// live only for the update (DeepSpeed allocates its fp32 gradient partition the same way).
void Engine::make_master_gradients() {
  double unscale = 1.0 / loss_scale();
  for (auto& group : groups_) {
    group->master_grads = empty(group->owned_grads.sizes(),
                                {.dtype = DType::f32, .device = device_, .tag = MemoryTag::grad});
    ops::copy_(group->master_grads, group->owned_grads);
    if (unscale != 1.0) ops::mul_(group->master_grads, unscale);
    group->master_params.set_grad(group->master_grads);
  }
}

// Whether any rank's reduced gradients hold an inf or a NaN. Each rank checks what it updates
// (its owned slice, through its sums of squares), and the flags are combined so that every
// rank skips the same steps.
bool Engine::gradients_overflowed(const std::vector<double>& square_sums) {
  double local = 0.0;
  for (double sum : square_sums) {
    if (!std::isfinite(sum)) local = 1.0;
  }
  Tensor flag = full({1}, local, {.dtype = DType::f64, .tag = MemoryTag::comm});
  control_->all_reduce(flag, comm::ReduceOperation::max);
  return flag.item() != 0.0;
}

// Mixed precision: rounds each updated fp32 master slice into the 16-bit parameters it shadows.
void Engine::copy_master_to_parameters() {
  for (auto& group : groups_) ops::copy_(group->owned_params, group->master_params);
}

void Engine::step() {
  auto start = std::chrono::steady_clock::now();
  bool boundary = is_gradient_accumulation_boundary();
  micro_steps_ += 1;
  global_samples_ += config_.train_micro_batch_size_per_gpu * world_size();
  if (!boundary) return;
  if (mixed_precision()) make_master_gradients();
  // One pass over the gradients serves both the overflow check and the norm (clipping and
  // logging), which read the same unclipped values.
  bool logging = config_.steps_per_print > 0 && (global_steps_ + 1) % config_.steps_per_print == 0;
  bool needs_norm = config_.gradient_clipping > 0.0 || logging;
  std::vector<double> square_sums;
  if (loss_scaler_ || needs_norm) square_sums = local_square_sums();
  last_step_overflowed_ = loss_scaler_ && gradients_overflowed(square_sums);
  if (loss_scaler_) {
    std::string overflow_message = loss_scaler_->update(last_step_overflowed_);
    if (!overflow_message.empty() && rank() == 0) {
      fmt::print("step={}: {}\n", global_steps_ + 1, overflow_message);
      std::fflush(stdout);
    }
  }
  if (last_step_overflowed_) {
    skipped_steps_ += 1;
  } else {
    if (needs_norm) last_grad_norm_ = global_grad_norm(square_sums);
    update_parameters();
  }
  for (auto& group : groups_) {
    if (!group->master_grads.defined()) continue;
    group->master_params.set_grad(Tensor());
    group->master_grads = Tensor();
  }
  zero_gradients();
  recording_traces_ = false;  // the first step's module order drives prefetching from now on
  last_step_traffic_ = comm::CommStats::difference(data_parallel_->stats(), stats_at_last_step_);
  stats_at_last_step_ = data_parallel_->stats();
  global_steps_ += 1;
  last_local_loss_ = loss_sum_ / double(config_.gradient_accumulation_steps);
  loss_sum_ = 0.0;
  // As in DeepSpeed, a skipped step counts as a global step but does not advance the schedule.
  if (schedule_ && !last_step_overflowed_) schedule_->step();
  timers_.step += seconds_since(start);
  if (config_.steps_per_print > 0 && global_steps_ % config_.steps_per_print == 0) log_step();
}

// Clips, updates the owned slices and brings the parameters every rank uses up to date.
void Engine::update_parameters() {
  // last_grad_norm_ is this step's norm when clipping is on (step() took it).
  if (config_.gradient_clipping > 0.0 && last_grad_norm_ > config_.gradient_clipping) {
    scale_update_gradients(config_.gradient_clipping / (last_grad_norm_ + 1e-6));
  }
  optimizer_->step();
  if (mixed_precision()) copy_master_to_parameters();
  if (stage_ == 1 || stage_ == 2) all_gather_owned_slices();
  if (stage_ == 3) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      if (!groups_[g]->plan.partitioned) gather_group(g);  // persistent groups stay current
    }
  }
}

void Engine::all_gather_owned_slices() {
  for (auto& group : groups_) {
    MemoryTagGuard as_comm(MemoryTag::comm);
    // The collective may not read and write overlapping buffers, so the slice goes out from a
    // copy.
    Tensor outgoing = ops::clone(group->owned_params);
    data_parallel_->all_gather(outgoing, group->full_params);
  }
}

void Engine::zero_gradients() {
  for (auto& group : groups_) {
    if (stage_ <= 1)
      ops::fill_(group->full_grads, 0.0);
    else
      ops::fill_(group->owned_grads, 0.0);
  }
}

double Engine::last_global_loss() {
  Tensor value = full({1}, last_local_loss_, {.dtype = DType::f64, .tag = MemoryTag::comm});
  control_->all_reduce(value);
  return value.item() / double(world_size());
}

void Engine::log_step() {
  double loss = last_global_loss();
  double seconds = seconds_since(last_log_time_);
  double samples_per_second =
      double(global_samples_ - samples_at_last_log_) / std::max(seconds, 1e-9);
  last_log_time_ = std::chrono::steady_clock::now();
  samples_at_last_log_ = global_samples_;
  if (rank() != 0) return;
  std::string scale = loss_scaler_ ? fmt::format(", loss_scale={:g}", loss_scale()) : "";
  fmt::print(
      "step={}, skipped={}, lr=[{:.6g}], loss={:.4f}, grad_norm={:.4f}{}, samples/s={:.1f}\n",
      global_steps_, skipped_steps_, get_lr(), loss, last_grad_norm_, scale, samples_per_second);
  if (config_.wall_clock_breakdown) {
    fmt::print("time (ms): forward {:.1f} | backward {:.1f} | reduce {:.1f} | step {:.1f}\n",
               1e3 * timers_.forward, 1e3 * timers_.backward, 1e3 * timers_.reduce,
               1e3 * timers_.step);
    timers_ = Timers{};
  }
}

NamedTensors Engine::consolidated_state_dict() {
  if (stage_ == 3) {
    for (size_t g = 0; g < groups_.size(); ++g) gather_group(g);
  }
  NamedTensors state;
  for (auto& [name, tensor] : model_->state_dict()) {
    state.emplace_back(name,
                       tensor.device().is_cpu() ? ops::clone(tensor) : tensor.to(Device::cpu()));
  }
  if (stage_ == 3) {
    for (size_t g = 0; g < groups_.size(); ++g) release_group(g);
  }
  return state;
}

}  // namespace zt::dist
