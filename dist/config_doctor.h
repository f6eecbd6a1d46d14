// The config doctor: per-rank memory by kind and bytes sent per step, predicted from a model, a
// Config and a world size before anything is trained (the ZeRO paper's formulas of
// dist/zero/expected_footprint.h applied to the model's real partition plan), and the cheapest
// ZeRO layout that fits a per-rank device budget.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "dist/config.h"
#include "dist/config_doctor_activations.h"
#include "dist/zero/expected_footprint.h"
#include "nn/module.h"

namespace zt::dist {

// What the predictions need of a model: its parameter count and, for stage 3, how its
// by-module plan splits it (groups kept whole under the persistence thresholds, and the
// largest partitioned module, gathered whole with its gradient during its backward).
struct ModelShape {
  int64_t parameter_count = 0;       // Psi
  int64_t kept_whole_numel = 0;      // stage 3: on every rank whole
  int64_t largest_module_numel = 0;  // stage 3: the largest partitioned group, padded
  std::string largest_module_name;
  // Stage 3: the most partitioned elements gathered at once: a module's group and the groups
  // after it that stage3_prefetch_bucket_size lets prefetch start (within
  // stage3_max_live_parameters), in forward or backward order.
  int64_t gathered_peak_numel = 0;
  // The ops the model's forward runs, with or without activation checkpointing
  // (dist/config_doctor_activations.h); empty: activations are not predicted.
  std::function<std::vector<ActivationOp>(bool checkpointed)> activation_ops;
  // Or the model's activation peak whole (the GPT's, dist/config_doctor_gpt.h): device bytes
  // for a micro-batch, with or without activation checkpointing.
  std::function<int64_t(int64_t micro_batch, bool checkpointed)> activation_peak;
  // The activation_checkpointing.number_checkpoints that checkpoints the model as the
  // prediction takes it (every stage or layer its own segment); 0: the config's, else 1.
  int64_t number_checkpoints = 0;
  bool predicts_activations() const { return activation_ops || activation_peak; }
};
ModelShape model_shape(nn::Module& model, const ZeroConfig& zero, int world_size);

// One rank's prediction. Activations are predicted where the shape tells the model's ops, for
// the config's micro-batch; transient buffers (communication staging, gradients whole before
// their reduction) are not, and the budget search takes them as a reserve.
struct RankPrediction {
  int stage = 0;
  int world_size = 1;
  int64_t element_bytes = 4;          // B: 4 in fp32, 2 under fp16/bf16
  ExpectedOffloadBytes model_states;  // device, host and NVMe bytes between steps
  int64_t gathered_working_set = 0;   // stage 3: gathered params + the largest module's gradient
  int64_t activation_bytes = -1;      // the activation peak; -1: not predicted
  std::vector<std::pair<comm::CollectiveKind, double>> traffic;  // payload bytes per step
  int64_t device_bytes() const;  // model states on the device plus the stage-3 working set
  int64_t host_bytes() const;
  double traffic_bytes() const;
};
RankPrediction predict_rank(const ModelShape& shape, const Config& config, int world_size,
                            bool checkpointed = false);

// The table --explain-config prints.
std::string explain_prediction(const RankPrediction& prediction, const ModelShape& shape);

// A layout the doctor may suggest: the stage and where the optimizer and parameters live.
struct Layout {
  int stage = 0;
  std::string offload_optimizer = "none";  // "none" or "cpu"
  std::string offload_param = "none";      // "none" or "cpu" (stage 3 only)
  int64_t micro_batch = 0;                 // per rank; 0: the config's
  bool checkpointing = false;              // activation checkpointing of the model's layers
  int64_t number_checkpoints = 0;          // written where checkpointing (ModelShape's)
  std::string str() const;
};
// `config` laid out as `layout`: its ZeRO stage and offload, and where the layout chooses the
// micro-batch, that micro-batch (the samples per rank and step kept by accumulation) and the
// activation_checkpointing block (number_checkpoints set, or 0 without checkpointing).
Config with_layout(const Config& config, const Layout& layout);
// The keys a suggested config sets, as a DeepSpeed config's JSON: the micro-batch and
// accumulation, zero_optimization's stage and offload devices, activation_checkpointing.
std::string layout_config_json(const Config& suggested);

struct Suggestion {
  Layout layout;
  RankPrediction prediction;
  std::string why;  // the layouts ruled out before it, and by how much each missed
};
// The cheapest layout whose predicted device bytes plus `reserve_bytes` (buffers, and the
// activations where the shape does not predict them) fit `budget_bytes`: least traffic per
// step first, then least offload (none, optimizer, optimizer and parameters); within one,
// where activations are predicted, the largest micro-batch that divides the config's samples
// per rank and step (the global batch kept by accumulation), every micro-batch without
// activation checkpointing before any with it (a re-run forward). nullopt when none fits.
// Offloading the optimizer needs Adam, so other optimizers are offered no offload.
std::optional<Suggestion> suggest_layout(const ModelShape& shape, const Config& config,
                                         int world_size, int64_t budget_bytes,
                                         int64_t reserve_bytes, std::string* why_none = nullptr);

}  // namespace zt::dist
