// Config: ds_config.json read with DeepSpeed's key names, defaults (its code's, where code and
// docs disagree) and batch-size rule. Invariant: a Config that parse_config returns holds only
// what this engine honours; a key asking for something not implemented yet is an error, an
// unknown key a warning, and every message starts with "<source>: <key path>: ".
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/sparse_layout.h"
#include "dist/config_auto.h"
#include "dist/config_compression.h"
#include "dist/config_pipeline.h"
#include "observe/observe_config.h"
#include "optim/lr_schedules.h"

namespace zt::dist {

// Every rejection of a config. Each problem is one line naming the file, the key's path and what
// was expected; parse_config collects all of a config's problems into one ConfigError (what()
// is its lines joined by newlines), with the warnings it gave before them.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& problem)
      : std::runtime_error(problem), errors_{problem} {}
  ConfigError(std::vector<std::string> errors, std::vector<std::string> warnings);

  const std::vector<std::string>& errors() const { return errors_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  std::vector<std::string> errors_;
  std::vector<std::string> warnings_;
};

// optimizer {"type", "params"}. Types are matched case-insensitively and stored canonically.
struct OptimizerConfig {
  bool present = false;
  std::string type;  // "Adam", "AdamW", "SGD", "Lamb", "OneBitAdam", "ZeroOneAdam", "OneBitLamb"
  double lr = 1e-3;
  double weight_decay = 0.0;  // 0.01 for torch_adam with decoupled decay (torch.optim.AdamW)
  // Adam and AdamW
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  bool bias_correction = true;
  // Decoupled weight decay. DeepSpeed's "Adam" is AdamW unless params.adam_w_mode is false;
  // "AdamW" always decouples. This is the effective mode, whichever the type.
  bool adam_w_mode = true;
  bool torch_adam = false;  // DeepSpeed's choice of implementation; only changes the default decay
  // SGD (PyTorch's semantics; nesterov needs momentum > 0 and dampening 0)
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  // Lamb and OneBitLamb: the trust ratio's clamp; eps under the square root or after it
  double max_coeff = 10.0;
  double min_coeff = 0.01;
  bool eps_inside_sqrt = false;
  // OneBitAdam, ZeroOneAdam and OneBitLamb (DeepSpeed's names and defaults). The compressed
  // all-reduce always runs over the data-parallel group's MPI communicator on host copies:
  // comm_backend_name ("nccl" or "mpi") and cuda_aware are accepted and change nothing here.
  int64_t freeze_step = 100000;  // OneBitAdam, OneBitLamb
  bool cuda_aware = false;
  std::string comm_backend_name = "nccl";
  int64_t var_freeze_step = 100000;  // ZeroOneAdam
  int64_t var_update_scaler = 16;
  int64_t local_step_scaler = 32678;
  int64_t local_step_clipper = 16;
  double coeff_beta = 0.9;  // OneBitLamb
  double factor_max = 4.0;
  double factor_min = 0.5;
  double factor_threshold = 0.1;
  // Ours (bench/onebit_convergence.sh): the compressed optimizers average exactly, nothing
  // compressed, to measure what the compression costs (optim::OneBitOptions::exact_average).
  bool zerotrain_exact_average = false;

  bool is_adam() const { return type == "Adam" || type == "AdamW"; }
  bool is_lamb() const { return type == "Lamb"; }
  bool is_compressed_communication() const {
    return type == "OneBitAdam" || type == "ZeroOneAdam" || type == "OneBitLamb";
  }
};

// scheduler {"type", "params"}: the params of `type` are filled, the others keep defaults.
struct SchedulerConfig {
  bool present = false;
  std::string type;  // "WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"
  optim::WarmupLRParams warmup;  // WarmupLR and WarmupDecayLR
  int64_t total_num_steps = 0;   // WarmupDecayLR (required there)
  optim::WarmupCosineLRParams warmup_cosine;
  optim::OneCycleParams one_cycle;
  optim::LRRangeTestParams lr_range_test;
  int64_t last_batch_iteration = -1;  // a schedule resumed at this iteration (-1: fresh)
};

// zero_optimization.offload_optimizer and offload_param, with DeepSpeed's names and defaults.
// device: "none", "cpu" (host memory) or "nvme" (swap files under nvme_path, one folder per
// rank). Sizes and counts are elements or buffers, as in DeepSpeed.
struct OffloadConfig {
  std::string device = "none";
  std::string nvme_path;     // required with device "nvme"
  int64_t buffer_count = 4;  // offload_param's default is 5
  bool pin_memory = false;
  // offload_optimizer only.
  bool pipeline_read = false;
  bool pipeline_write = false;
  bool fast_init = false;
  double ratio = 1.0;
  // offload_param only.
  int64_t buffer_size = 100'000'000;
  int64_t max_in_cpu = 1'000'000'000;

  bool enabled() const { return device != "none"; }
  bool to_nvme() const { return device == "nvme"; }
  // offload_param's defaults (its buffer_count differs).
  static OffloadConfig param_defaults() {
    OffloadConfig config;
    config.buffer_count = 5;
    return config;
  }
};

// The top-level aio block: how NVMe swapping submits its reads and writes. block_size is bytes
// (each transfer is cut into blocks of it), queue_depth the blocks in flight per worker,
// intra_op_parallelism the workers.
struct AioConfig {
  int64_t block_size = 1'048'576;
  int64_t queue_depth = 8;
  int64_t intra_op_parallelism = 1;
  bool single_submit = false;
  bool overlap_events = true;
  bool use_gds = false;  // recorded: there is no GPUDirect Storage path
};

// zero_optimization. Sizes and counts are elements, as in DeepSpeed. The engine reads the stage
// only through the three switches it implies (dist/zero/partitioning.h).
// Recorded only (parsed and checked so that DeepSpeed configs load, never read by the engine):
// - contiguous_gradients: gradients are always collected in one contiguous buffer per group;
// - reduce_scatter: with P_os gradients are always reduce-scattered (DeepSpeed's false means
//   all-reduce, which would give the same values with more traffic);
// - allgather_partitions: updated slices are always all-gathered, never broadcast one by one;
// - allgather_bucket_size: one all-gather per group, and groups are sized by reduce_bucket_size
//   (or are one module's parameters with P_p);
// - stage3_max_reuse_distance: a gathered group is released after every use, so none is kept
//   for reuse.
// offload_optimizer (stages 1-3) and offload_param (stage 3): dist/config_offload_blocks.h.
struct ZeroConfig {
  int stage = 0;  // 0: data parallel; 1: + optimizer states; 2: + gradients; 3: + parameters
  bool contiguous_gradients = true;  // recorded only
  bool reduce_scatter = true;        // recorded only
  bool allgather_partitions = true;  // recorded only
  bool overlap_comm = false;         // unset in the file: true with P_p (stage 3), false otherwise
  int64_t reduce_bucket_size = 500'000'000;
  int64_t allgather_bucket_size = 500'000'000;  // even; recorded only
  int64_t stage3_prefetch_bucket_size = 50'000'000;
  // A module's parameters of at most this many elements are kept whole on every rank...
  int64_t stage3_param_persistence_threshold = 100'000;
  // ...while the whole-kept parameters stay within this many elements in all (DeepSpeed's
  // model_persistence_threshold; later modules over it are partitioned).
  int64_t stage3_model_persistence_threshold = std::numeric_limits<int64_t>::max();
  int64_t stage3_max_live_parameters = 1'000'000'000;
  int64_t stage3_max_reuse_distance = 1'000'000'000;  // recorded only
  // Recorded only: DeepSpeed's save_16bit_model gathers the stage-3 weights with it; this
  // engine's model files (Engine::consolidated_state_dict, the apps' --save) are always whole.
  bool gather_16bit_weights_on_model_save = false;
  // Seconds a rank waits in a stage-3 gather for the other ranks to join before it ends the
  // job naming the module (a rank running a forward alone would otherwise wait forever).
  // DeepSpeed has no such key; the default is its process-group timeout, 30 minutes.
  double stage3_gather_timeout = 1800.0;
  // The tile of the optimizer step and of swapping: the update and its NVMe traffic go
  // sub-group by sub-group of at most this many elements.
  int64_t sub_group_size = 1'000'000'000;
  OffloadConfig offload_optimizer;
  OffloadConfig offload_param = OffloadConfig::param_defaults();
};

// fp16: 16-bit parameters, gradients and traffic, fp32 master weights, and loss scaling (static
// when loss_scale > 0, else dynamic: optim::LossScaler). The engine casts floating inputs to the
// model's dtype whatever auto_cast says, since a mismatched input could only be an error.
struct Fp16Config {
  bool enabled = false;
  bool auto_cast = false;   // recorded
  double loss_scale = 0.0;  // 0: dynamic; > 0: static
  int initial_scale_power = 16;
  int64_t loss_scale_window = 1000;
  int hysteresis = 2;
  bool consecutive_hysteresis = false;
  double min_loss_scale = 1.0;
};

// bf16 (alias "bfloat16"): as fp16 with bfloat16 and no loss scaling (its range is f32's), as in
// DeepSpeed, which also does not check bf16 gradients for overflow.
struct Bf16Config {
  bool enabled = false;
};

// activation_checkpointing. Read with DeepSpeed's defaults and rules; zt::initialize applies it
// to the process-wide checkpointing options (autograd/checkpointing_options.h), which every
// zt::checkpoint reads. number_checkpoints: apps/mnist_train runs its network in that many
// checkpointed segments, and it sizes the contiguous buffer. There is no model parallelism, so
// partition_activations has nothing to split (a warning says so); it only gates the two keys that
// need it. cpu_checkpointing: saved inputs are copied to host memory under the
// activation_offload tag and back for recomputation (a plain copy on the CPU backend, counted
// apart). contiguous_memory_optimization: the saved inputs of a forward's checkpoints are copied
// into one buffer preallocated for number_checkpoints checkpoints and reused by later forwards.
// synchronize_checkpoint_boundary: the device is synchronized at each checkpoint boundary, as
// in DeepSpeed (Backend::synchronize; a no-op on the CPU, whose kernels are finished when they
// return). profile: recomputation time and count accumulate in zt::checkpointing_profile().
struct ActivationCheckpointingConfig {
  bool partition_activations = false;
  bool cpu_checkpointing = false;  // needs partition_activations, as in DeepSpeed
  // Needs partition_activations and number_checkpoints, as in DeepSpeed.
  bool contiguous_memory_optimization = false;
  bool synchronize_checkpoint_boundary = false;
  bool profile = false;
  int64_t number_checkpoints = 0;  // 0: unset (DeepSpeed's None)
};

struct Config {
  std::string source_name;  // the file the config came from, for later messages
  int world_size = 1;       // the data-parallel size the batch triple was resolved against
  // tensor_parallel.autotp_size: ranks that split each layer (Megatron-style); world_size
  // above is the world divided by it.
  int tensor_parallel_size = 1;
  // The batch triple, resolved: train_batch_size == micro_batch * accumulation * world_size.
  int64_t train_batch_size = 0;
  int64_t train_micro_batch_size_per_gpu = 0;
  int64_t gradient_accumulation_steps = 0;
  // DeepSpeed's code default is None (no step log) since PR #6602; we keep the documented 10.
  // 0 turns the log off.
  int64_t steps_per_print = 10;
  bool wall_clock_breakdown = false;
  double gradient_clipping = 0.0;  // global L2 norm bound; 0 = off (DeepSpeed's code default)
  bool prescale_gradients = false;
  double gradient_predivide_factor = 1.0;
  // DeepSpeed refuses ZeRO with optimizers outside its tested list (SGD among them) unless this is
  // true; every optimizer here updates a ZeRO shard through the same rule, so it is only recorded.
  bool zero_allow_untested_optimizer = false;
  OptimizerConfig optimizer;
  SchedulerConfig scheduler;
  ZeroConfig zero_optimization;
  AioConfig aio;
  Fp16Config fp16;
  Bf16Config bf16;
  ActivationCheckpointingConfig activation_checkpointing;
  std::optional<SparsityConfig> sparse_attention;  // dist/config_sparse_attention.h
  observe::ObserveConfig observe;                  // trace, comms_logger, flops_profiler, monitors
  // One line per "auto" the program's values filled, for the program to print at startup.
  std::vector<std::string> auto_resolved;
  CompressionConfig compression_training;  // dist/config_compression.h
  PipelineConfig pipeline;                 // dist/config_pipeline.h
};

// Parses ds_config.json text. `source_name` starts every message; `world_size` is the
// data-parallel size. Warnings (unknown keys, deprecated forms, "auto" values) are appended to
// `warnings`, or printed to stderr when it is null. Throws ConfigError.
// `program`: the values that fill "auto" (dist/config_auto.h); none fill nothing, and an "auto"
// left where DeepSpeed does not drop it is an error naming the key.
Config parse_config(const std::string& json_text, const std::string& source_name, int world_size,
                    std::vector<std::string>* warnings, const ProgramValues& program = {});

// Reads the file at `path` and parses it; `path` names the source in messages.
Config load_config(const std::string& path, int world_size, std::vector<std::string>* warnings,
                   const ProgramValues& program = {});

}  // namespace zt::dist
