// The config doctor on an app's command line: --explain-config prints each rank's predicted
// memory and traffic for the config and model the app would train (and trains nothing), and
// with --memory-budget-mib the cheapest ZeRO layout that fits the budget, and why.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "apps/cli_flags.h"
#include "dist/config.h"
#include "dist/config_doctor.h"
#include "nn/module.h"

namespace zt::apps {

struct DoctorOptions {
  bool explain = false;
  double budget_mib = 0.0;   // 0: no suggestion
  double reserve_mib = 0.0;  // what the doctor does not predict (activations, buffers)
};

inline std::vector<FlagSpec> config_doctor_flags() {
  return {{"explain-config", "", "",
           "print each rank's predicted memory by kind and bytes sent per step; no training"},
          {"memory-budget-mib", "M", "",
           "with --explain-config: suggest the cheapest ZeRO layout within M MiB per rank",
           "no suggestion"},
          {"memory-reserve-mib", "M", "0",
           "with --memory-budget-mib: MiB kept for what is not predicted (buffers; activations "
           "of models without a formula)"}};
}

inline DoctorOptions read_doctor_options(const Flags& flags) {
  DoctorOptions options;
  options.explain = flags.has("explain-config");
  if (flags.has("memory-budget-mib"))
    options.budget_mib = flags.get_double("memory-budget-mib", 0.0);
  options.reserve_mib = flags.get_non_negative_double("memory-reserve-mib");
  if (!options.explain && flags.has("memory-budget-mib"))
    throw FlagError("--memory-budget-mib needs --explain-config");
  return options;
}

// Prints the prediction for `config` and, with a budget, the suggestion; returns the exit
// status: 0, or 1 when no layout fits the budget (with each layout's shortfall). `shape` is
// dist::model_shape of the model; where it predicts activations (dist::ModelShape), with
// `checkpointed` telling whether the config checkpoints them, the suggestion also chooses the
// micro-batch and checkpointing.
inline int explain_shape(const DoctorOptions& options, const dist::Config& config,
                         const dist::ModelShape& shape, int world_size, bool checkpointed) {
  fmt::print("{}", dist::explain_prediction(
                       dist::predict_rank(shape, config, world_size, checkpointed), shape));
  if (options.budget_mib <= 0.0) return 0;
  auto bytes = [](double mib) { return int64_t(mib * double(1 << 20)); };
  std::string why_none;
  std::optional<dist::Suggestion> suggestion = dist::suggest_layout(
      shape, config, world_size, bytes(options.budget_mib), bytes(options.reserve_mib), &why_none);
  if (!suggestion) {
    fmt::print("no layout fits {} MiB per rank (with {} MiB reserved):\n{}", options.budget_mib,
               options.reserve_mib, why_none);
    return 1;
  }
  const bool activations = shape.predicts_activations();
  fmt::print(
      "suggested for {} MiB per rank ({} MiB reserved for {}): {}\n"
      "cheapest first (least traffic a step, then least offload{}):\n{}\n",
      options.budget_mib, options.reserve_mib, activations ? "buffers" : "activations and buffers",
      suggestion->layout.str(),
      activations ? ", then the largest micro-batch, then checkpointing" : "", suggestion->why);
  // The suggestion as the keys to put in the config (activation_checkpointing included), so
  // that the run trains what was predicted.
  fmt::print("as config keys: {}\n",
             dist::layout_config_json(dist::with_layout(config, suggestion->layout)));
  return 0;
}

// explain_shape for `model`, its activations told by `activation_ops` (the model's ops,
// dist/config_doctor_activations.h) where given, checkpointed in `number_checkpoints` segments
// where the doctor suggests checkpointing.
inline int explain_config(const DoctorOptions& options, const dist::Config& config,
                          nn::Module& model, int world_size,
                          std::function<std::vector<dist::ActivationOp>(bool)> activation_ops = {},
                          bool checkpointed = false, int64_t number_checkpoints = 0) {
  dist::ModelShape shape = dist::model_shape(model, config.zero_optimization, world_size);
  shape.activation_ops = std::move(activation_ops);
  shape.number_checkpoints = number_checkpoints;
  return explain_shape(options, config, shape, world_size, checkpointed);
}

}  // namespace zt::apps
