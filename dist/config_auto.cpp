// "auto" filled from the program's values: a table of key paths, each with the program value
// that fills it, walked once over the parsed JSON before the sections are read.
#include "dist/config_auto.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string_view>

namespace zt::dist {
namespace {

using json = nlohmann::json;

struct AutoKey {
  std::vector<std::string_view> path;
  const char* from;  // the program value, for the note
  std::function<std::optional<json>(const ProgramValues&, int world_size)> value;
};

template <typename T>
std::optional<json> if_set(const std::optional<T>& value) {
  return value ? std::optional<json>(json(*value)) : std::nullopt;
}

// The Hugging Face integration's table (trainer_config_process and _finalize).
const std::vector<AutoKey>& auto_keys() {
  static const std::vector<AutoKey> keys = {
      {{"train_micro_batch_size_per_gpu"},
       "the micro batch size",
       [](const ProgramValues& p, int) { return if_set(p.micro_batch_size); }},
      {{"gradient_accumulation_steps"},
       "the accumulation steps",
       [](const ProgramValues& p, int) { return if_set(p.gradient_accumulation_steps); }},
      {{"train_batch_size"},
       "micro batch size * accumulation steps * world size",
       [](const ProgramValues& p, int world) -> std::optional<json> {
         if (!p.micro_batch_size || !p.gradient_accumulation_steps) return std::nullopt;
         return json(*p.micro_batch_size * *p.gradient_accumulation_steps * world);
       }},
      {{"gradient_clipping"},
       "the gradient clipping norm",
       [](const ProgramValues& p, int) { return if_set(p.gradient_clipping); }},
      {{"optimizer", "params", "lr"},
       "the learning rate",
       [](const ProgramValues& p, int) { return if_set(p.lr); }},
      {{"optimizer", "params", "weight_decay"},
       "the weight decay",
       [](const ProgramValues& p, int) { return if_set(p.weight_decay); }},
      {{"optimizer", "params", "betas"},
       "Adam's betas",
       [](const ProgramValues& p, int) { return if_set(p.betas); }},
      {{"optimizer", "params", "eps"},
       "Adam's epsilon",
       [](const ProgramValues& p, int) { return if_set(p.eps); }},
      {{"scheduler", "params", "warmup_min_lr"},
       "0, as the Hugging Face integration sets it",
       [](const ProgramValues&, int) { return std::optional<json>(json(0)); }},
      {{"scheduler", "params", "warmup_max_lr"},
       "the learning rate",
       [](const ProgramValues& p, int) { return if_set(p.lr); }},
      {{"scheduler", "params", "warmup_num_steps"},
       "the warm-up steps",
       [](const ProgramValues& p, int) { return if_set(p.warmup_steps); }},
      {{"scheduler", "params", "total_num_steps"},
       "the run's optimizer steps",
       [](const ProgramValues& p, int) { return if_set(p.total_steps); }},
      {{"fp16", "enabled"},
       "the program's fp16 switch",
       [](const ProgramValues& p, int) { return if_set(p.fp16); }},
      {{"bf16", "enabled"},
       "the program's bf16 switch",
       [](const ProgramValues& p, int) { return if_set(p.bf16); }},
      {{"zero_optimization", "reduce_bucket_size"},
       "hidden size^2",
       [](const ProgramValues& p, int) -> std::optional<json> {
         if (!p.hidden_size) return std::nullopt;
         return json(*p.hidden_size * *p.hidden_size);
       }},
      {{"zero_optimization", "stage3_prefetch_bucket_size"},
       "0.9 * hidden size^2",
       [](const ProgramValues& p, int) -> std::optional<json> {
         if (!p.hidden_size) return std::nullopt;
         return json(int64_t(0.9 * double(*p.hidden_size * *p.hidden_size)));
       }},
      {{"zero_optimization", "prefetch_bucket_size"},
       "0.9 * hidden size^2",
       [](const ProgramValues& p, int) -> std::optional<json> {
         if (!p.hidden_size) return std::nullopt;
         return json(int64_t(0.9 * double(*p.hidden_size * *p.hidden_size)));
       }},
      {{"zero_optimization", "stage3_param_persistence_threshold"},
       "10 * hidden size",
       [](const ProgramValues& p, int) -> std::optional<json> {
         if (!p.hidden_size) return std::nullopt;
         return json(10 * *p.hidden_size);
       }},
      {{"zero_optimization", "param_persistence_threshold"},
       "10 * hidden size",
       [](const ProgramValues& p, int) -> std::optional<json> {
         if (!p.hidden_size) return std::nullopt;
         return json(10 * *p.hidden_size);
       }},
  };
  return keys;
}

}  // namespace

std::vector<std::string> resolve_auto_values(json& root, const ProgramValues& program,
                                             int world_size, const std::string& source_name) {
  std::vector<std::string> notes;
  if (!root.is_object()) return notes;
  // "bfloat16" is DeepSpeed's older name of the bf16 block.
  const bool bf16_alias = root.contains("bfloat16") && !root.contains("bf16");
  for (const AutoKey& key : auto_keys()) {
    std::vector<std::string_view> steps = key.path;
    if (bf16_alias && steps.front() == "bf16") steps.front() = "bfloat16";
    json* node = &root;
    for (std::string_view step : steps) {
      node = node->is_object() && node->contains(step) ? &(*node)[std::string(step)] : nullptr;
      if (node == nullptr) break;
    }
    if (node == nullptr || !node->is_string() || *node != "auto") continue;
    std::optional<json> value = key.value(program, world_size);
    if (!value) continue;
    *node = *value;
    notes.push_back(fmt::format("{}: {} = {} (\"auto\", from {})", source_name,
                                fmt::join(steps, "."), value->dump(), key.from));
  }
  return notes;
}

}  // namespace zt::dist
