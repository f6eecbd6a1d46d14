// ds_config.json's zero_optimization block with DeepSpeed's names, defaults and rules (fact sheet
// 1.7). DeepSpeed's ZeRO config accepts each ZeRO-3 key under two spellings (the field's name and
// its "stage3_" alias); with both given, the alias is the one read, as pydantic reads it.
#include <limits>
#include <string_view>

#include "dist/config_offload_blocks.h"
#include "dist/config_zero_block.h"
#include "dist/zero/partitioning.h"

namespace zt::dist::config_reading {
namespace {

// One integer key under its two spellings: the "stage3_" alias wins, as in DeepSpeed.
void read_either_spelling(Section& section, std::string_view alias, std::string_view name,
                          int64_t& field) {
  int64_t by_name = field, by_alias = field;
  const bool has_name = section.read_int(name, by_name, kNonNegativeCount);
  const bool has_alias = section.read_int(alias, by_alias, kNonNegativeCount);
  if (has_alias) {
    field = by_alias;
    if (has_name && by_name != by_alias) {
      section.warn(name, fmt::format("{} ignored: \"{}\" (the same key) is {}, and it is the one "
                                     "DeepSpeed reads",
                                     by_name, alias, by_alias));
    }
  } else if (has_name) {
    field = by_name;
  }
}

// gather_16bit_weights_on_model_save: two spellings and a deprecated third.
void read_gather_16bit(Section& section, bool& field) {
  bool by_name = field, by_alias = field, deprecated = field;
  const bool has_name = section.read_bool("gather_16bit_weights_on_model_save", by_name);
  const bool has_alias = section.read_bool("stage3_gather_16bit_weights_on_model_save", by_alias);
  const bool has_deprecated =
      section.read_bool("stage3_gather_fp16_weights_on_model_save", deprecated);
  if (has_deprecated && (has_name || has_alias)) {
    section.reject("stage3_gather_fp16_weights_on_model_save",
                   "deprecated; set it or \"stage3_gather_16bit_weights_on_model_save\", not both");
  }
  field = has_alias ? by_alias : has_name ? by_name : has_deprecated ? deprecated : field;
}

// Keys that only change how fast or in what order DeepSpeed's ZeRO moves data, never a value:
// accepted at any value; the warning says that this engine's own scheme applies.
void read_performance_only(Section& section, const ParseContext& context) {
  const std::pair<std::string_view, json> performance_only[] = {
      {"use_multi_rank_bucket_allreduce", true},
      {"round_robin_gradients", false},
      {"stage3_module_granularity_threshold", 0},
      {"module_granularity_threshold", 0},
      {"stage3_use_all_reduce_for_fetch_params", false},
      {"use_all_reduce_for_fetch_params", false},
      {"stage3_allgather_sequential", false},
      {"allgather_sequential", false},
      {"memory_efficient_linear", true},
      {"override_module_apply", true},
      {"log_trace_cache_warnings", false},
      {"enable_sanity_checks", false},
  };
  for (const auto& [key, default_value] : performance_only) {
    const json* value = section.take(key);
    if (value == nullptr || same_value(*value, default_value)) continue;
    context.warn(section.path_of(key),
                 fmt::format("{} accepted; performance only in DeepSpeed (no value changes), and "
                             "this engine gathers and reduces in its own way",
                             shown(*value)));
  }
}

}  // namespace

void read_zero(Section& top, ZeroConfig& zero, const ParseContext& context) {
  const json* value = top.take("zero_optimization");
  if (value != nullptr && value->is_boolean()) {
    zero.stage = value->get<bool>() ? 1 : 0;
    context.warn("zero_optimization",
                 fmt::format("a boolean is deprecated; read as {{\"stage\": {}}}", zero.stage));
    return;
  }
  Section section = top.section("zero_optimization", {.auto_keeps_default = true});
  section.read_int("stage", zero.stage, IntRange{.min = 0, .max = 3});
  section.read_bool("contiguous_gradients", zero.contiguous_gradients);
  section.read_bool("reduce_scatter", zero.reduce_scatter);
  section.read_bool("allgather_partitions", zero.allgather_partitions);
  // DeepSpeed overlaps by default where parameters are partitioned (its stage 3 engine).
  if (!section.read_bool("overlap_comm", zero.overlap_comm))
    zero.overlap_comm = ZeroPartitioning::for_stage(zero.stage).parameters;
  section.read_int("reduce_bucket_size", zero.reduce_bucket_size, kCount);
  if (section.read_int("allgather_bucket_size", zero.allgather_bucket_size, kCount) &&
      zero.allgather_bucket_size % 2 != 0) {
    section.reject("allgather_bucket_size",
                   fmt::format("expected an even integer, got {}", zero.allgather_bucket_size));
  }
  read_either_spelling(section, "stage3_prefetch_bucket_size", "prefetch_bucket_size",
                       zero.stage3_prefetch_bucket_size);
  read_either_spelling(section, "stage3_param_persistence_threshold", "param_persistence_threshold",
                       zero.stage3_param_persistence_threshold);
  read_either_spelling(section, "stage3_model_persistence_threshold", "model_persistence_threshold",
                       zero.stage3_model_persistence_threshold);
  read_either_spelling(section, "stage3_max_live_parameters", "max_live_parameters",
                       zero.stage3_max_live_parameters);
  read_either_spelling(section, "stage3_max_reuse_distance", "max_reuse_distance",
                       zero.stage3_max_reuse_distance);
  read_gather_16bit(section, zero.gather_16bit_weights_on_model_save);
  section.read_number("stage3_gather_timeout", zero.stage3_gather_timeout, kPositive);
  section.read_int("sub_group_size", zero.sub_group_size, kCount);
  read_performance_only(section, context);
  read_offload_blocks(section, zero);
  // Implemented by DeepSpeed, not (yet) here: accepted at DeepSpeed's default only.
  const std::pair<std::string_view, json> defaults_only[] = {
      {"load_from_fp32_weights", true},
      {"elastic_checkpoint", false},
      {"ignore_unused_parameters", true},
      {"legacy_stage1", false},
      {"pipeline_loading_checkpoint", false},
      {"zero_hpz_partition_size", 1},
      {"mics_shard_size", -1},
      {"mics_hierarchical_params_gather", false},
  };
  for (const auto& [key, default_value] : defaults_only)
    section.require_default(key, default_value);
  // Keys that would change the values trained: rejected with what they would change.
  const std::tuple<std::string_view, json, std::string_view> changes_training[] = {
      {"zero_quantized_weights", false,
       "quantized parameter all-gathers are not implemented (they would round the weights each "
       "forward sees)"},
      {"zero_quantized_nontrainable_weights", false,
       "quantized storage of frozen weights is not implemented (it would round them)"},
      {"zero_quantized_gradients", false,
       "quantized gradient reduction is not implemented (it would round the gradients)"},
      {"zenflow", nullptr,
       "ZenFlow is not implemented (it would update most gradients a step late on the host)"},
      {"zeropp_loco_param", nullptr,
       "LoCo-ZeRO++ is not implemented (it goes with quantized gradients)"},
  };
  for (const auto& [key, default_value, reason] : changes_training)
    section.require_default(key, default_value, reason);
  section.finish();
}

}  // namespace zt::dist::config_reading
