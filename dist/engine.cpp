// The training engine: builds the ZeRO pieces of dist/zero/ for the configured stage and runs
// forward, backward and step through them (how a step works: dist/engine.h).
#include "dist/engine.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "autograd/functions.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"
#include "dist/config_builders.h"
#include "dist/zero/gradient_reducer.h"
#include "dist/zero/host_offload.h"
#include "dist/zero/optimizer_shard.h"
#include "dist/zero/parameter_gatherer.h"
#include "dist/zero/parameter_swap.h"
#include "observe/trace_recorder.h"
#include "tensor_parallel/sharded_state.h"

namespace zt::dist {

namespace {

void check_engine_config(const Config& config, int data_parallel_size) {
  if (config.world_size != data_parallel_size) {
    throw std::invalid_argument(fmt::format(
        "Engine: {} was resolved for a data-parallel size of {}, but {} ranks are running",
        config.source_name, config.world_size, data_parallel_size));
  }
  const ZeroConfig& zero = config.zero_optimization;
  if (zero.offload_param.to_nvme() && !zero.offload_optimizer.enabled()) {
    // The update writes parameter slices through the host optimizer's copy-back, which brings
    // swapped slices in and out; the device optimizer updates them in place.
    throw std::invalid_argument(fmt::format(
        "{}: zero_optimization.offload_param: device \"nvme\" needs offload_optimizer too "
        "(\"cpu\" or \"nvme\")",
        config.source_name));
  }
  if (!config.optimizer.present) {
    throw std::invalid_argument(config.source_name +
                                ": optimizer: the config has no optimizer block and the program "
                                "passes no optimizer (give one of them)");
  }
}

void check_tensor_group(const Config& config, const comm::Communicator* tensor_group) {
  const int group_size = tensor_group != nullptr ? tensor_group->size() : 1;
  if (config.tensor_parallel_size != group_size) {
    throw std::invalid_argument(fmt::format(
        "Engine: {} asks for a tensor-parallel size of {} (tensor_parallel.autotp_size), but "
        "the engine's tensor group has {} ranks",
        config.source_name, config.tensor_parallel_size, group_size));
  }
}

// Per flat group, the [offset, numel) of each parameter named in `names`, sorted.
std::vector<std::vector<std::pair<int64_t, int64_t>>> ranges_of(
    const PartitionPlan& plan, const std::set<std::string>& names) {
  std::vector<std::vector<std::pair<int64_t, int64_t>>> ranges(plan.groups.size());
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    for (const PlannedParam& param : plan.groups[g].params)
      if (names.contains(param.name)) ranges[g].emplace_back(param.offset, param.numel);
    std::sort(ranges[g].begin(), ranges[g].end());
  }
  return ranges;
}

std::unique_ptr<optim::LossScaler> make_loss_scaler(const Fp16Config& fp16) {
  return std::make_unique<optim::LossScaler>(
      optim::LossScalerOptions{.static_scale = fp16.loss_scale,
                               .initial_scale_power = fp16.initial_scale_power,
                               .scale_window = fp16.loss_scale_window,
                               .hysteresis = fp16.hysteresis,
                               .consecutive_hysteresis = fp16.consecutive_hysteresis,
                               .min_scale = fp16.min_loss_scale});
}

}  // namespace

Engine::Engine(Config config, std::shared_ptr<nn::Module> model, comm::Communicator& data_parallel,
               const ParamGroupSpecs& param_groups, comm::Communicator* tensor_group)
    : config_(std::move(config)), model_(std::move(model)), data_parallel_(&data_parallel) {
  if (!model_) throw std::invalid_argument("Engine: no model");
  check_engine_config(config_, data_parallel_->size());
  check_tensor_group(config_, tensor_group);
  // By the parameters' names, before the tensors the caller named are converted or moved.
  param_groups_ = resolve_param_groups(param_groups, *model_, config_);
  const ZeroConfig& zero = config_.zero_optimization;
  partitioning_ = ZeroPartitioning::for_stage(zero.stage);
  device_ = device_of_parameters(*model_);
  // Scalars (norms, overflow flags, losses) are host tensors: their communicator is the
  // host-memory one over the same ranks even when ZeRO traffic goes through NCCL.
  control_ = data_parallel_->host_communicator().split(0, data_parallel_->rank());
  // The observability outputs' folders are checked on every rank together.
  run_on_all_ranks("observability outputs", [&] {
    observers_ = std::make_unique<EngineObservers>(config_, data_parallel, *model_);
  });
  data_parallel_ = &observers_->data_parallel();
  if (config_.fp16.enabled) model_dtype_ = DType::f16;
  if (config_.bf16.enabled) model_dtype_ = DType::bf16;
  if (config_.fp16.enabled) loss_scaler_ = make_loss_scaler(config_.fp16);
  // As DeepSpeed's module.half() / .bfloat16(): parameters and buffers become 16-bit, and the
  // fp32 master weights start from those rounded values.
  if (mixed_precision()) model_->to(model_dtype_);
  // With P_p a module's parameters are gathered together, so a group is a module's own
  // parameters; otherwise a group is a reduction bucket.
  int world = world_size();
  plan_ = partitioning_.parameters
              ? plan_by_module(*model_, world, zero.stage3_param_persistence_threshold,
                               zero.stage3_model_persistence_threshold)
              : plan_by_bucket(model_->named_parameters(), zero.reduce_bucket_size, world);
  groups_ = build_flat_group_buffers(plan_, partitioning_, model_dtype_, device_, *data_parallel_,
                                     zero.offload_optimizer.enabled());
  if (zero.offload_param.enabled()) offload_owned_parameters(groups_, device_);
  shard_ = std::make_unique<OptimizerShard>(partitioning_, config_, groups_, param_groups_, device_,
                                            mixed_precision(), *control_,
                                            data_parallel_->host_communicator());
  if (tensor_group != nullptr && tensor_group->size() > 1) {
    tensor_control_ = tensor_group->host_communicator().split(0, tensor_group->rank());
    shard_->combine_over(*tensor_control_);
    // Every tensor rank holds the parameters that are not shards alike: rank 0 counts them.
    if (tensor_group->rank() != 0) {
      const std::set<std::string> sharded = tensor_parallel::sharded_parameter_names(*model_);
      for (const auto& [name, param] : model_->named_parameters())
        if (!sharded.contains(name)) norm_excluded_names_.insert(name);
      shard_->exclude_from_norm(ranges_of(plan_, norm_excluded_names_));
    }
    placement_.tensor_rank = tensor_group->rank();
    placement_.tensor_size = tensor_group->size();
    placement_.layouts = tensor_parallel::shard_layouts(*model_);
    other_axes_.push_back(tensor_control_.get());
  }
  if (config_.scheduler.present) schedule_ = make_schedule(config_.scheduler, shard_->optimizer());
  if (zero.offload_param.to_nvme()) {
    // Every rank learns whether every rank could make its swap files (one rank failing alone
    // would leave the others waiting in the first gather).
    run_on_all_ranks("zero_optimization.offload_param.nvme_path", [&] {
      parameter_swap_ = std::make_unique<ParameterSwap>(config_, rank(), groups_);
    });
    shard_->set_parameter_swap(parameter_swap_.get());
  }
  gatherer_ = std::make_unique<ParameterGatherer>(partitioning_, zero, *data_parallel_, groups_,
                                                  model_dtype_);
  gatherer_->set_parameter_swap(parameter_swap_.get());
  reducer_ = std::make_unique<GradientReducer>(partitioning_, config_, *data_parallel_, groups_,
                                               model_dtype_, device_, *gatherer_, timers_);
  if (partitioning_.parameters) {
    gatherer_->register_module_hooks(*model_, plan_.module_groups, [this](size_t group) {
      reducer_->collect_gradients_in_place(group);
    });
  }
  observers_->watch_model();
  data_parallel_->reset_stats();
  // Peaks count from here: building the model allocated it whole on every rank, which the
  // engine then partitioned, unless it was built inside PartitionedInit.
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
  // The module hooks go first, then the grad-ready hooks, while the groups still exist.
  gatherer_.reset();
  reducer_.reset();
}

double Engine::get_lr() const {
  return shard_->optimizer().lr();
}
std::vector<double> Engine::get_group_lrs() const {
  std::vector<double> lrs;
  for (const optim::ParamGroup& group : shard_->optimizer().param_groups()) lrs.push_back(group.lr);
  return lrs;
}
optim::Optimizer& Engine::optimizer() {
  return shard_->optimizer();
}
int64_t Engine::peak_gathered_numel() const {
  return gatherer_->peak_gathered_numel();
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
  observers_->begin_phase("forward", global_steps_ + 1);
  observe::TraceSpan span("forward", "phase", observe::TraceTrack::compute);
  auto start = std::chrono::steady_clock::now();
  MemoryTagGuard as_activation(MemoryTag::activation);
  nn::TensorList model_inputs;
  model_inputs.reserve(inputs.size());
  for (const Tensor& input : inputs) {
    bool cast = input.defined() && is_floating(input.dtype()) && input.dtype() != model_dtype_;
    model_inputs.push_back(cast ? input.to(model_dtype_) : input);
  }
  nn::TensorList outputs = (*model_)(model_inputs);
  timers_.forward += phase_seconds(start, device_, config_.wall_clock_breakdown);
  return outputs;
}

Tensor Engine::backward(const Tensor& loss) {
  if (loss.numel() != 1) {
    throw std::invalid_argument(fmt::format(
        "Engine::backward: the loss must be a scalar, got shape {}", shape_str(loss.sizes())));
  }
  check_gradients_came_from_engine_backward("Engine::backward");
  if (backward_since_step_) {
    throw std::logic_error(fmt::format(
        "Engine::backward: called again with no engine.step() after the previous "
        "engine.backward (micro-step {}, gradient_accumulation_steps {}); call engine.step() "
        "after every engine.backward(loss): it counts the micro-step and updates at the "
        "accumulation boundary (to back-propagate several losses, add them and call backward "
        "once)",
        micro_steps_, config_.gradient_accumulation_steps));
  }
  // Averaging over micro-batches and loss scaling happen in the gradient seed:
  // d(loss * scale / GAS) = scale / GAS, in f32 (2^16 is past f16's largest finite value).
  run_backward(loss, loss.item(), loss_scale() / double(config_.gradient_accumulation_steps));
  return loss;
}

void Engine::combine_over_pipeline(comm::Communicator& pipeline_group,
                                   const std::set<std::string>& counted_on_another_stage) {
  if (pipeline_group.size() <= 1 && counted_on_another_stage.empty()) return;
  pipeline_control_ = pipeline_group.host_communicator().split(0, pipeline_group.rank());
  shard_->combine_over(*pipeline_control_);
  norm_excluded_names_.insert(counted_on_another_stage.begin(), counted_on_another_stage.end());
  shard_->exclude_from_norm(ranges_of(plan_, norm_excluded_names_));
}

void Engine::backward_accumulated_gradients(double batch_loss) {
  if (config_.gradient_accumulation_steps != 1)
    throw std::logic_error(fmt::format(
        "Engine::backward_accumulated_gradients: the engine's gradient_accumulation_steps is "
        "{}; a pipeline's micro-batches are accumulated before, so it must be 1",
        config_.gradient_accumulation_steps));
  if (backward_since_step_)
    throw std::logic_error(
        "Engine::backward_accumulated_gradients: called again with no engine.step() since");
  reducer_->forget_gradients_outside_engine_backward();
  // A scalar whose gradient with respect to each parameter is exactly the gradient it holds:
  // sum(p * g) with g constant, whose backward is ones * g. Its backward runs the engine's
  // hooks, so ZeRO reduces these gradients as it reduces any backward's.
  // The gradient tensors are zeroed in place, not dropped: without P_g they are views of the
  // flat gradient buffers, which the surrogate's backward must accumulate into again.
  Tensor surrogate;
  for (const auto& [name, parameter] : model_->named_parameters()) {
    Tensor held = parameter.grad();
    if (!held.defined()) continue;
    Tensor accumulated = ops::clone(held);
    ops::fill_(held, 0.0);
    Tensor term = sum(parameter * accumulated);
    surrogate = surrogate.defined() ? surrogate + term : term;
  }
  if (!surrogate.defined())
    throw std::logic_error(
        "Engine::backward_accumulated_gradients: no parameter of the model holds a gradient");
  run_backward(surrogate, batch_loss, 1.0);
}

void Engine::run_backward(const Tensor& root, double loss_value, double seed) {
  observers_->begin_phase("backward", global_steps_ + 1);
  observe::TraceSpan span("backward", "phase", observe::TraceTrack::compute);
  auto start = std::chrono::steady_clock::now();
  loss_sum_ += loss_value;
  reducer_->keep_gradients_local(shard_->gradients_stay_local());
  reducer_->begin_backward(is_gradient_accumulation_boundary());
  {
    MemoryTagGuard as_activation(MemoryTag::activation);
    Tensor root32 = root.dtype() == DType::f32 ? root : root.to(DType::f32);
    root32.backward(full(root.sizes(), seed, {.dtype = DType::f32, .device = root.device()}));
  }
  observers_->end_autograd_backward();
  reducer_->end_backward();
  backward_since_step_ = true;
  timers_.backward += phase_seconds(start, device_, config_.wall_clock_breakdown);
}

// Takes the overflow check, the loss-scale update and the norm from one pass over the
// gradients (they read the same unclipped values); returns whether to update.
bool Engine::take_update_decision() {
  bool logging = config_.steps_per_print > 0 && (global_steps_ + 1) % config_.steps_per_print == 0;
  bool needs_norm = config_.gradient_clipping > 0.0 || logging;
  std::vector<double> square_sums;
  if (loss_scaler_ || needs_norm) square_sums = shard_->local_square_sums();
  last_step_overflowed_ = loss_scaler_ && shard_->gradients_overflowed(square_sums);
  if (loss_scaler_) {
    std::string overflow_message = loss_scaler_->update(last_step_overflowed_);
    if (!overflow_message.empty() && rank() == 0) {
      fmt::print("step={}: {}\n", global_steps_ + 1, overflow_message);
      std::fflush(stdout);
    }
  }
  if (last_step_overflowed_) return false;
  if (needs_norm) last_grad_norm_ = shard_->global_grad_norm(square_sums);
  return true;
}

void Engine::check_gradients_came_from_engine_backward(const char* caller) const {
  const std::string& param = reducer_->gradient_outside_engine_backward();
  if (param.empty()) return;
  throw std::logic_error(fmt::format(
      "{}: parameter {} (and maybe others) got a gradient from a backward the engine did not "
      "run, such as loss.backward(); the engine neither scales nor reduces such gradients, so "
      "no update could use them. Call engine.backward(loss) instead of loss.backward()",
      caller, param));
}

void Engine::step() {
  check_gradients_came_from_engine_backward("Engine::step");
  if (!backward_since_step_) {
    throw std::logic_error(fmt::format(
        "Engine::step: no engine.backward(loss) since the last step() (micro-step {}), so "
        "there is nothing to update; call engine.backward(loss) before every engine.step()",
        micro_steps_));
  }
  backward_since_step_ = false;
  observers_->begin_phase("step", global_steps_ + 1);
  observe::TraceSpan span("step", "phase", observe::TraceTrack::compute);
  auto start = std::chrono::steady_clock::now();
  bool boundary = is_gradient_accumulation_boundary();
  micro_steps_ += 1;
  global_samples_ += config_.train_micro_batch_size_per_gpu * world_size();
  if (!boundary) return;
  if (mixed_precision()) shard_->make_master_gradients(loss_scale());
  if (take_update_decision()) {
    // last_grad_norm_ is this step's norm when clipping is on.
    {
      observe::TraceSpan update("optimizer update", "optimizer", observe::TraceTrack::optimizer);
      shard_->update(last_grad_norm_);
    }
    gatherer_->publish_updated_parameters();
  } else {
    skipped_steps_ += 1;
  }
  shard_->drop_master_gradients();
  reducer_->zero_gradients();
  gatherer_->stop_recording_traces();  // the first step's module order drives prefetching
  last_step_traffic_ = comm::CommStats::difference(data_parallel_->stats(), stats_at_last_step_);
  stats_at_last_step_ = data_parallel_->stats();
  global_steps_ += 1;
  last_local_loss_ = loss_sum_ / double(config_.gradient_accumulation_steps);
  loss_sum_ = 0.0;
  // As in DeepSpeed, a skipped step counts as a global step but does not advance the schedule.
  if (schedule_ && !last_step_overflowed_) schedule_->step();
  timers_.step += phase_seconds(start, device_, config_.wall_clock_breakdown);
  if (config_.steps_per_print > 0 && global_steps_ % config_.steps_per_print == 0) log_step();
  span.end();  // inside the trace window, which may close now
  observers_->end_step({.step = global_steps_,
                        .global_samples = global_samples_,
                        .loss = last_local_loss_,
                        .lr = get_lr(),
                        .loss_scale = loss_scaler_ ? loss_scale() : 0.0});
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
      global_steps_, skipped_steps_, fmt::join(get_group_lrs(), ", "), loss, last_grad_norm_, scale,
      samples_per_second);
  observers_->log(global_steps_, memory_accounting().stats());
  if (config_.wall_clock_breakdown) {
    fmt::print("time (ms): forward {:.1f} | backward {:.1f} | reduce {:.1f} | step {:.1f}\n",
               1e3 * timers_.forward, 1e3 * timers_.backward, 1e3 * timers_.reduce,
               1e3 * timers_.step);
    timers_ = StepTimers{};
  }
}

NamedTensors Engine::consolidated_state_dict() {
  if (partitioning_.parameters) gatherer_->gather_all();
  NamedTensors state;
  // A tied parameter stays one tensor under each of its names, as in state_dict().
  std::map<const TensorImpl*, Tensor> copies;
  for (auto& [name, tensor] : model_->state_dict()) {
    Tensor& copy = copies[tensor.impl()];
    if (!copy.defined())
      copy = tensor.device().is_cpu() ? ops::clone(tensor) : tensor.to(Device::cpu());
    state.emplace_back(name, copy);
  }
  if (partitioning_.parameters) gatherer_->release_all();
  return state;
}

}  // namespace zt::dist
