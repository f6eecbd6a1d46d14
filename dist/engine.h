// Engine: the training engine zt::initialize returns, mirroring DeepSpeed's: forward, backward,
// step, with ZeRO stages 0-3 over the data-parallel communicator. It coordinates the pieces of
// dist/zero/, each written against the stage's three switches (dist/zero/partitioning.h):
// the flat buffers of the partition plan, the gradient reducer, the parameter gatherer and the
// optimizer shard.
//
// How a step works (N ranks, the partition plan of dist/zero/partition_plan.h):
// - forward: with P_p, each module's group is all-gathered before its forward and released
//   after it (the parameter gatherer); otherwise every rank holds every parameter.
// - backward: each group's gradients are reduced when its last gradient is ready (the
//   gradient reducer): all-reduced without P_os, reduce-scattered into the owned slice with it;
//   without P_g only at the boundary micro-batch, with P_g at every one (full gradient buffers
//   then live only while a group is being reduced). With P_p the group is gathered again for
//   its backward and released after its reduction.
// - step, at the accumulation boundary: the optimizer shard checks overflow, takes the norm,
//   clips and updates the owned slices (every element without P_os); then the gatherer
//   all-gathers the updated slices (P_os without P_p) or refreshes the groups kept whole (P_p).
// Mixed precision (fp16 or bf16 enabled in the config): the model's parameters, gradients and
// all ZeRO traffic are 16-bit; the optimizer updates an fp32 master copy of each owned slice
// (counted as optimizer state, with the moments) and rounds it back into the 16-bit parameters.
// fp16 scales the loss dynamically; a step whose gradients overflow on any rank is skipped on
// every rank.
// Use: every micro-batch is forward, engine.backward(loss), engine.step(), as in DeepSpeed. The
// engine refuses (std::logic_error saying what to call) a step() with no engine.backward since
// the last one, a second engine.backward before step(), and gradients that a backward the
// engine did not run (loss.backward()) put on the model's parameters: each of these would
// otherwise update nothing, or the wrong thing, without a word.
// Parameter groups (dist/param_groups.h) give parts of the model their own lr and weight decay.
// Invariants: every rank computes the same plan and issues the same collectives in the same
// order; the communicator sums in rank order, so stages 0-3 produce bitwise equal weights
// whenever they sum the same values (see docs/zero.md for where they cannot).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "comm/communicator.h"
#include "core/allocator.h"
#include "core/generator.h"
#include "dist/config.h"
#include "dist/engine_observers.h"
#include "dist/model_parallel_checkpoint.h"
#include "dist/param_groups.h"
#include "dist/step_timers.h"
#include "dist/zero/flat_group_buffers.h"
#include "dist/zero/partition_plan.h"
#include "dist/zero/partitioning.h"
#include "nn/module.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedules.h"
#include "optim/optimizer.h"

namespace zt::dist {

struct ConsolidatedCheckpoint;
class GradientReducer;
class OptimizerShard;
class ParameterGatherer;
class ParameterSwap;

// The one device every parameter of `model` is on (the host when it has none); throws
// std::invalid_argument naming two parameters on different devices.
Device device_of_parameters(nn::Module& model);

// Model-state bytes of one rank, measured and by the ZeRO paper's formula for this stage.
struct ModelStateReport {
  int stage = 0;
  int world_size = 1;
  int64_t parameter_count = 0;     // Psi
  DType model_dtype = DType::f32;  // f16/bf16: mixed precision with fp32 master weights
  int64_t param_bytes = 0, grad_bytes = 0, optim_state_bytes = 0;  // measured, live
  int64_t expected_param_bytes = 0, expected_grad_bytes = 0, expected_optim_state_bytes = 0;
  // What offload moved to host memory (param_offload, grad_offload, optim_state_offload tags)
  // and to NVMe swap files, measured and by formula; the device figures above exclude them.
  int64_t host_param_bytes = 0, host_grad_bytes = 0, host_optim_state_bytes = 0;
  int64_t expected_host_param_bytes = 0, expected_host_grad_bytes = 0,
          expected_host_optim_state_bytes = 0;
  int64_t nvme_bytes = 0, expected_nvme_bytes = 0;  // in this rank's swap files
  std::string str() const;
};

class Engine {
 public:
  // `data_parallel` is the data axis of the rank grid and must outlive the engine. The
  // model's parameters are moved into the engine's flat buffers (the model's tensors keep
  // working as views of them). `param_groups`: the optimizer's groups (none: one group of every
  // parameter with the optimizer block's values). Collective over data_parallel.
  // Tensor parallelism (tensor_parallel/): `tensor_group` is the tensor axis of the grid (null
  // or one rank: none), of config.tensor_parallel_size ranks. The model holds this rank's shards
  // (tensor_parallel::sharded_parameter_names), which are different parameters on each tensor
  // rank: ZeRO still partitions and reduces over `data_parallel` only, while the gradient norm
  // sums the shards' squares across the tensor group (replicated parameters counted once) and
  // the overflow decision is taken over the whole world.
  Engine(Config config, std::shared_ptr<nn::Module> model, comm::Communicator& data_parallel,
         const ParamGroupSpecs& param_groups = {}, comm::Communicator* tensor_group = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Calls the model. Floating-point inputs are cast to the model's dtype first (16-bit under
  // fp16/bf16); undefined tensors (None) and integer inputs pass as they are. The one-tensor
  // form needs one output; the list form passes several inputs and returns every output.
  Tensor forward(const Tensor& input);
  nn::TensorList forward(const nn::TensorList& inputs);
  template <typename... More>
  requires(std::is_convertible_v<const More&, const Tensor&>&&...) nn::TensorList
      forward(const Tensor& first, const Tensor& second, const More&... more) {
    return forward(nn::TensorList{first, second, Tensor(more)...});
  }
  Tensor operator()(const Tensor& input) { return forward(input); }
  nn::TensorList operator()(const nn::TensorList& inputs) { return forward(inputs); }
  template <typename... More>
  requires(std::is_convertible_v<const More&, const Tensor&>&&...) nn::TensorList operator()(
      const Tensor& first, const Tensor& second, const More&... more) {
    return forward(nn::TensorList{first, second, Tensor(more)...});
  }
  // Back-propagates loss * loss_scale / gradient_accumulation_steps (the seed in f32, the loss
  // cast to f32 first) and reduces gradients as the stage says. Returns the loss it was given.
  // Throws std::logic_error, changing nothing, when the previous engine.backward has had no
  // step() yet, or when the model's parameters hold gradients of a backward the engine did
  // not run.
  Tensor backward(const Tensor& loss);
  // Pipeline parallelism (pipeline/pipeline_engine.h): the gradients that backwards run outside
  // the engine left on the model's parameters (a whole batch's, already averaged over its
  // micro-batches) are taken as one engine.backward: reduced over the data-parallel group as
  // the stage says (once per batch), then step() updates. `batch_loss`: this rank's loss of the
  // batch, for the log. Needs gradient_accumulation_steps 1 in this engine's config. Throws
  // std::logic_error as backward() does, or when no parameter holds a gradient.
  void backward_accumulated_gradients(double batch_loss);
  // Pipeline parallelism: the gradient norm (clipping) and the fp16 overflow decision also
  // combine over `pipeline_group` (the stages of this rank's replica; each stage's engine holds
  // its layers), and the parameters in `counted_on_another_stage` (a tied copy, such as the
  // head tied to the embedding, whose gradient another copy already counts) are left out of
  // this rank's norm. Collective over the pipeline group; call once, before the first step.
  void combine_over_pipeline(comm::Communicator& pipeline_group,
                             const std::set<std::string>& counted_on_another_stage);
  // Counts a micro-step; at the accumulation boundary: finishes reduction, clips by global
  // norm, updates, zeroes gradients, advances the schedule, and logs. Follows every
  // engine.backward; throws std::logic_error, changing nothing, when there was none since the
  // last step() (as after loss.backward(), whose gradients the engine never reduced). Under fp16,
  // gradients with an inf or NaN on any rank skip the update and the schedule on every rank; the
  // loss scale drops by DeepSpeed's rules and rank 0 logs the attempted and the new scale.
  void step();

  bool is_gradient_accumulation_boundary() const;
  int64_t global_steps() const { return global_steps_; }
  int64_t global_samples() const { return global_samples_; }
  int64_t micro_steps() const { return micro_steps_; }
  // The base learning rate (the optimizer block's, as the schedule sets it), and each
  // parameter group's.
  double get_lr() const;
  std::vector<double> get_group_lrs() const;
  const ResolvedParamGroups& param_groups() const { return param_groups_; }
  // Updates skipped because gradients overflowed (fp16), and the current loss scale (1 when
  // the loss is not scaled).
  int64_t skipped_steps() const { return skipped_steps_; }
  double loss_scale() const { return loss_scaler_ ? loss_scaler_->scale() : 1.0; }
  const optim::LossScaler* loss_scaler() const { return loss_scaler_.get(); }
  // Whether the last update was skipped for an overflow.
  bool last_step_overflowed() const { return last_step_overflowed_; }
  DType model_dtype() const { return model_dtype_; }
  // The device of the model's parameters: flat buffers, gradients and optimizer state live
  // there too. Inputs and targets must be moved there by the caller, as in PyTorch.
  Device device() const { return device_; }
  bool mixed_precision() const { return model_dtype_ != DType::f32; }
  // The global gradient norm (before clipping) of the last update that took it: every update
  // when gradient_clipping is on, else the updates that are logged.
  double get_global_grad_norm() const { return last_grad_norm_; }
  // The mean loss of the last update over ranks and micro-batches. Collective.
  double last_global_loss();

  nn::Module& module() { return *model_; }
  std::shared_ptr<nn::Module> module_ptr() { return model_; }
  void train() { model_->train(); }
  void eval() { model_->eval(); }
  const Config& config() const { return config_; }
  optim::Optimizer& optimizer();
  optim::LRSchedule* lr_scheduler() { return schedule_.get(); }
  int rank() const { return data_parallel_->rank(); }
  int world_size() const { return data_parallel_->size(); }
  int zero_stage() const { return config_.zero_optimization.stage; }
  // The stage as the paper's switches: which of optimizer states, gradients, parameters are
  // partitioned.
  ZeroPartitioning partitioning() const { return partitioning_; }
  const PartitionPlan& plan() const { return plan_; }
  // ZeRO traffic only: gradients and parameters (scalars such as losses and norms travel on
  // a separate communicator so these counts are the paper's volumes).
  comm::Communicator& data_parallel_communicator() { return *data_parallel_; }
  // The comms_logger block's logger (null when it is off).
  const observe::CommsLogger* comms_logger() const { return observers_->comms_logger(); }
  // The observability blocks' state: the flops profile, the monitors.
  const EngineObservers& observers() const { return *observers_; }
  // An event of the program's own ("Test/Samples/test_accuracy") to the csv_monitor and
  // tensorboard files, at x = the global samples so far (DeepSpeed's engine.monitor.write_events).
  void write_monitor_event(const std::string& name, double value) {
    observers_->write_event(name, value, global_samples_);
  }

  // With P_p: the most parameter elements gathered at once so far (prefetch included).
  int64_t peak_gathered_numel() const;
  // Every parameter, whole, on every rank, in host memory (gathered with P_p). Collective.
  NamedTensors consolidated_state_dict();
  ModelStateReport model_state_report() const;

  // Checkpoints, as DeepSpeed's (layout and crash safety: dist/checkpoint_files.h). Saves the
  // parameters, the fp32 master slices and optimizer state of every rank, the schedule, the
  // loss scaler, the step counters and each rank's generators (the default one and those of
  // tensor-parallel modules, dist/checkpoint_generators.h), with `client_state`; `tag` ""
  // means "global_step<N>". Call it at an accumulation boundary. Collective; returns DIR/TAG.
  std::string save_checkpoint(const std::string& dir, const std::string& tag = "",
                              const nlohmann::json& client_state = nullptr,
                              bool save_latest = true);
  // Restores all of that from DIR/TAG (TAG "" = the one `latest` names), whatever world size
  // and stage saved it, and returns the client state (null when none was saved). The files that
  // hold this engine's piece are read and checked before anything changes (every file is
  // checked to exist); an error leaves the engine as it was. Collective.
  nlohmann::json load_checkpoint(const std::string& dir, const std::string& tag = "");
  // The files the last load_checkpoint opened on this rank, in order (checkpoint_read_plan.h).
  const std::vector<std::string>& files_read_by_last_load() const { return files_read_; }
  // Model parallelism in checkpoints (dist/model_parallel_checkpoint.h): where this engine's
  // parameters sit in the whole model, so that its files are named by its model-parallel rank
  // and a checkpoint saved at any (pp, tp, dp) loads here. `other_axes`: host communicators of
  // the grid's model-parallel axes; save and load agree over them too (every rank of the world
  // calls both). `write_model_files`: run on data rank 0 with the staging directory during a
  // save (the pipeline's layer files). An engine built with a tensor group sets the tensor part
  // itself; the pipeline engine adds its stage.
  void set_model_parallel_placement(
      const ModelParallelPlacement& placement, std::vector<comm::Communicator*> other_axes,
      std::function<void(const std::string& staging_dir)> write_model_files = nullptr);
  const ModelParallelPlacement& model_parallel_placement() const { return placement_; }
  const std::vector<comm::Communicator*>& model_parallel_axes() const { return other_axes_; }
  // DeepSpeed's save_16bit_model: the model's weights in the model's own dtype (16-bit when fp16
  // or bf16 is on), gathered whole, in one safetensors file SAVE_DIR/SAVE_FILENAME written by
  // rank 0 (to a temporary name, then renamed; a tied parameter stored once). With P_p the
  // gather needs zero_optimization.gather_16bit_weights_on_model_save (either spelling): without
  // it nothing is written, rank 0 prints DeepSpeed's message and every rank returns false.
  // Collective; returns true once the file is written.
  bool save_16bit_model(const std::string& save_dir,
                        const std::string& save_filename = "model.safetensors");
  // The report of this rank: live and peak bytes by kind since the engine was built, next to
  // the ZeRO formulas, and the payload bytes per collective of the last training step (from
  // the step before it to its update) next to the communication volumes.
  std::string step_report() const;

 private:
  struct LoadedState;
  void run_on_all_ranks(const std::string& what, const std::function<void()>& body);
  void run_on_every_grid_rank(const std::string& what, const std::function<void()>& body);
  nlohmann::json engine_state_json() const;
  void write_optimizer_states(
      const std::string& staging_dir,
      const std::map<std::string, Generator*>& tensor_rank_generators) const;
  void check_checkpoint_matches_model(const ConsolidatedCheckpoint& checkpoint) const;
  LoadedState read_loaded_state(const std::string& dir, const std::string& tag) const;
  MemoryAccounting& memory_accounting() const;
  bool take_update_decision();
  void run_backward(const Tensor& root, double loss_value, double seed);
  void log_step();
  void check_gradients_came_from_engine_backward(const char* caller) const;

  Config config_;
  std::shared_ptr<nn::Module> model_;
  comm::Communicator* data_parallel_;
  std::unique_ptr<comm::Communicator> control_;           // scalars: norms, losses
  std::unique_ptr<comm::Communicator> tensor_control_;    // the same over the tensor group
  std::unique_ptr<comm::Communicator> pipeline_control_;  // and over the pipeline group
  std::set<std::string> norm_excluded_names_;             // parameters another rank's norm counts
  // Trace, comms logger, memory breakdown; before the pieces that use its communicator.
  std::unique_ptr<EngineObservers> observers_;
  ZeroPartitioning partitioning_;
  Device device_ = Device::cpu();  // where the parameters, gradients and optimizer state live
  DType model_dtype_ = DType::f32;
  ResolvedParamGroups param_groups_;
  std::unique_ptr<optim::LossScaler> loss_scaler_;  // fp16 only
  PartitionPlan plan_;
  FlatGroupList groups_;  // the pieces below work on these; declared first, destroyed last
  std::unique_ptr<ParameterSwap> parameter_swap_;  // offload_param "nvme"
  std::unique_ptr<ParameterGatherer> gatherer_;
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<OptimizerShard> shard_;
  std::unique_ptr<optim::LRSchedule> schedule_;
  ModelParallelPlacement placement_;
  std::vector<comm::Communicator*> other_axes_;  // agreement across the model-parallel axes
  std::vector<std::string> files_read_;          // by the last load_checkpoint
  std::function<void(const std::string&)> write_model_files_;

  bool backward_since_step_ = false;  // an engine.backward that its step() has not followed
  int64_t micro_steps_ = 0;
  int64_t global_steps_ = 0;
  int64_t global_samples_ = 0;
  int64_t skipped_steps_ = 0;
  bool last_step_overflowed_ = false;
  double last_grad_norm_ = 0.0;
  double loss_sum_ = 0.0;         // local losses of the current accumulation window
  double last_local_loss_ = 0.0;  // their mean at the last update
  // Traffic at the end of the previous step, and that of the last step.
  comm::CommStats stats_at_last_step_;
  comm::CommStats last_step_traffic_;

  StepTimers timers_;
  std::chrono::steady_clock::time_point last_log_time_;
  int64_t samples_at_last_log_ = 0;
};

}  // namespace zt::dist
