// "auto" in ds_config.json, filled from the program's own values as DeepSpeed's Hugging Face
// integration fills it from TrainingArguments and the model's config before DeepSpeed reads the
// file. Each value filled is noted ("<source>: <key> = <value> ("auto", from <what>)") for the
// program to print at startup; an "auto" nothing fills is left for the reader, which keeps the
// default where DeepSpeed drops "auto" (zero_optimization, fp16, bf16) and otherwise reports an
// error naming the key.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace zt::dist {

// What the program knows; unset members fill nothing.
struct ProgramValues {
  std::optional<int64_t> micro_batch_size;             // samples per rank per micro-step
  std::optional<int64_t> gradient_accumulation_steps;  // micro-steps per optimizer step
  std::optional<double> lr;                            // the optimizer's (peak) learning rate
  std::optional<double> weight_decay;
  std::optional<std::array<double, 2>> betas;  // Adam's
  std::optional<double> eps;                   // Adam's
  std::optional<double> gradient_clipping;     // the global norm bound (0: off)
  std::optional<int64_t> warmup_steps;         // the schedule's warm-up
  std::optional<int64_t> total_steps;          // optimizer steps of the whole run
  std::optional<bool> fp16, bf16;              // the program's precision switches
  std::optional<int64_t> hidden_size;          // the model's width (ZeRO bucket sizes)
};

// Replaces each "auto" of `root` that `program` resolves, as the Hugging Face integration does
// (train_batch_size = micro batch * accumulation * world_size; reduce_bucket_size = hidden^2,
// stage3_prefetch_bucket_size = 0.9 hidden^2, stage3_param_persistence_threshold = 10 hidden;
// scheduler.params.warmup_min_lr = 0, warmup_max_lr = lr). Returns one note per value filled.
std::vector<std::string> resolve_auto_values(nlohmann::json& root, const ProgramValues& program,
                                             int world_size, const std::string& source_name);

}  // namespace zt::dist
