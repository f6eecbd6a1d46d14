// ds_config.json to Config. A Section reads one JSON object: each typed read registers its key,
// so what is left at finish() is unknown. JSON null means "the default" everywhere, as DeepSpeed's
// top-level reads (dict.get) and its Optional fields treat it. Keys this engine does not
// implement are accepted only at their DeepSpeed default.
#include "dist/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>

#include "dist/config_compression_reader.h"
#include "dist/config_offload_blocks.h"
#include "dist/config_optimizer_blocks.h"
#include "dist/config_section.h"
#include "dist/json_comments.h"
#include "dist/zero/partitioning.h"

namespace zt::dist {
namespace {

using namespace config_reading;

// ---- batch triple (fact sheet 1.2) ----

// The product, or 0 (which the batch check rejects) when it overflows.
int64_t multiply_or_zero(std::initializer_list<int64_t> factors) {
  int64_t product = 1;
  for (int64_t factor : factors) {
    if (__builtin_mul_overflow(product, factor, &product)) return 0;
  }
  return product;
}

void resolve_batch_triple(Section& top, int world_size, Config& config) {
  std::optional<int64_t> total, micro, accumulation;
  int64_t value = 0;
  if (top.read_int("train_batch_size", value, kCount)) total = value;
  if (top.read_int("train_micro_batch_size_per_gpu", value, kCount)) micro = value;
  if (top.read_int("gradient_accumulation_steps", value, kCount)) accumulation = value;
  const int64_t world = world_size;
  std::string derived;  // which member was derived, for the message
  if (total && micro && !accumulation) {
    accumulation = *total / *micro / world;
    derived =
        fmt::format("gradient_accumulation_steps derived as {} // {} // {}", *total, *micro, world);
  } else if (total && accumulation && !micro) {
    micro = *total / world / *accumulation;
    derived = fmt::format("train_micro_batch_size_per_gpu derived as {} // {} // {}", *total, world,
                          *accumulation);
  } else if (micro && accumulation && !total) {
    total = multiply_or_zero({*micro, *accumulation, world});
  } else if (total && !micro && !accumulation) {
    accumulation = 1;
    micro = *total / world;
    derived = fmt::format("train_micro_batch_size_per_gpu derived as {} // {}", *total, world);
  } else if (micro && !total && !accumulation) {
    accumulation = 1;
    total = multiply_or_zero({*micro, world});
  } else if (!total && !micro) {
    top.fail("", "either train_batch_size or train_micro_batch_size_per_gpu needs to be provided");
  }
  std::string note = derived.empty() ? "" : fmt::format(" ({})", derived);
  int64_t product = 0;
  bool overflow = __builtin_mul_overflow(*micro, *accumulation, &product) ||
                  __builtin_mul_overflow(product, world, &product);
  if (*total <= 0 || *micro <= 0 || *accumulation <= 0 || overflow || *total != product) {
    top.fail("", fmt::format("train_batch_size {} != train_micro_batch_size_per_gpu {} * "
                             "gradient_accumulation_steps {} * world size {}{}",
                             *total, *micro, *accumulation, world, note));
  }
  config.train_batch_size = *total;
  config.train_micro_batch_size_per_gpu = *micro;
  config.gradient_accumulation_steps = *accumulation;
}

// ---- zero_optimization (fact sheet 1.7) ----

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
    section.fail("allgather_bucket_size",
                 fmt::format("expected an even integer, got {}", zero.allgather_bucket_size));
  }
  section.read_int("stage3_prefetch_bucket_size", zero.stage3_prefetch_bucket_size,
                   kNonNegativeCount);
  section.read_int("stage3_param_persistence_threshold", zero.stage3_param_persistence_threshold,
                   kNonNegativeCount);
  section.read_int("stage3_max_live_parameters", zero.stage3_max_live_parameters,
                   kNonNegativeCount);
  section.read_int("stage3_max_reuse_distance", zero.stage3_max_reuse_distance, kNonNegativeCount);
  section.read_number("stage3_gather_timeout", zero.stage3_gather_timeout, kPositive);
  section.read_int("sub_group_size", zero.sub_group_size, kCount);
  read_offload_blocks(section, zero);
  // Implemented by DeepSpeed, not (yet) here: accepted at DeepSpeed's default only.
  const std::pair<std::string_view, json> defaults_only[] = {
      {"use_multi_rank_bucket_allreduce", true},
      {"load_from_fp32_weights", true},
      {"elastic_checkpoint", false},
      {"stage3_model_persistence_threshold", std::numeric_limits<int64_t>::max()},
      {"stage3_gather_16bit_weights_on_model_save", false},
      {"stage3_gather_fp16_weights_on_model_save", false},
      {"stage3_module_granularity_threshold", 0},
      {"stage3_use_all_reduce_for_fetch_params", false},
      {"ignore_unused_parameters", true},
      {"round_robin_gradients", false},
      {"legacy_stage1", false},
      {"zero_hpz_partition_size", 1},
      {"zero_quantized_weights", false},
      {"zero_quantized_nontrainable_weights", false},
      {"zero_quantized_gradients", false},
      {"mics_shard_size", -1},
      {"mics_hierarchical_params_gather", false},
  };
  for (const auto& [key, default_value] : defaults_only)
    section.require_default(key, default_value);
  section.finish();
}

// ---- precision (fact sheet 1.6) ----

void read_precision(Section& top, Config& config) {
  Section fp16 = top.section("fp16");
  fp16.read_bool("enabled", config.fp16.enabled);
  fp16.read_bool("auto_cast", config.fp16.auto_cast);
  fp16.read_number("loss_scale", config.fp16.loss_scale, kNonNegative);
  fp16.read_int("initial_scale_power", config.fp16.initial_scale_power,
                IntRange{.min = 0, .max = 64});
  fp16.read_int("loss_scale_window", config.fp16.loss_scale_window, kCount);
  fp16.read_int("hysteresis", config.fp16.hysteresis, kCount);
  fp16.read_bool("consecutive_hysteresis", config.fp16.consecutive_hysteresis);
  fp16.read_number("min_loss_scale", config.fp16.min_loss_scale, kPositive);
  fp16.require_default("fp16_master_weights_and_grads", false);
  fp16.finish();

  const bool alias_used = top.take("bfloat16") != nullptr;
  if (alias_used && top.take("bf16") != nullptr) {
    top.fail("bfloat16", "deprecated alias of \"bf16\"; set one of them, not both");
  }
  Section bf16 = top.section(alias_used ? "bfloat16" : "bf16");
  bf16.read_bool("enabled", config.bf16.enabled);
  bf16.require_default("immediate_grad_update", false);
  bf16.finish();

  if (config.fp16.enabled && config.bf16.enabled) {
    top.fail(bf16.path(), "bfloat16 and fp16 modes cannot be simultaneously enabled");
  }
}

// ---- activation_checkpointing (fact sheet 1.8 and 6) ----

void read_activation_checkpointing(Section& top, ActivationCheckpointingConfig& checkpointing,
                                   const ParseContext& context) {
  Section section = top.section("activation_checkpointing");
  section.read_bool("partition_activations", checkpointing.partition_activations);
  section.read_bool("cpu_checkpointing", checkpointing.cpu_checkpointing);
  section.read_bool("contiguous_memory_optimization", checkpointing.contiguous_memory_optimization);
  section.read_bool("synchronize_checkpoint_boundary",
                    checkpointing.synchronize_checkpoint_boundary);
  section.read_bool("profile", checkpointing.profile);
  section.read_int("number_checkpoints", checkpointing.number_checkpoints, kCount);
  section.finish();
  // DeepSpeed's checkpointing.configure asserts these.
  if (checkpointing.contiguous_memory_optimization && !checkpointing.partition_activations) {
    section.fail("contiguous_memory_optimization", "needs \"partition_activations\": true");
  }
  if (checkpointing.contiguous_memory_optimization && checkpointing.number_checkpoints == 0) {
    section.fail("contiguous_memory_optimization",
                 "needs \"number_checkpoints\" (the number of "
                 "checkpointed layers)");
  }
  if (checkpointing.cpu_checkpointing && !checkpointing.partition_activations) {
    section.fail("cpu_checkpointing", "needs \"partition_activations\": true");
  }
  if (checkpointing.partition_activations) {
    context.warn(section.path_of("partition_activations"),
                 "no model parallelism (tensor parallel size 1); activations are not "
                 "partitioned");
  }
}

// ---- sections and keys of features this engine does not implement yet ----

void read_unimplemented(Section& top) {
  const std::pair<std::string_view, json> top_defaults_only[] = {
      {"memory_breakdown", false},          {"dump_state", false},
      {"sparse_gradients", false},          {"disable_allgather", false},
      {"dataloader_drop_last", false},      {"graph_harvesting", false},
      {"communication_data_type", nullptr}, {"zero_force_ds_cpu_optimizer", true},
  };
  for (const auto& [key, default_value] : top_defaults_only)
    top.require_default(key, default_value);

  Section data_types = top.section("data_types");
  data_types.require_default("grad_accum_dtype", nullptr);
  data_types.finish();

  Section checkpoint = top.section("checkpoint");
  checkpoint.require_default("tag_validation", "Warn");
  checkpoint.require_default("load_universal", false);
  checkpoint.require_default("use_node_local_storage", false);
  Section parallel_write = checkpoint.section("parallel_write");
  parallel_write.require_default("pipeline_stage", false);
  parallel_write.finish();
  checkpoint.finish();

  // Feature blocks switched by "enabled": off is fine (their other keys are then inert).
  for (std::string_view key :
       {"tensorboard", "csv_monitor", "wandb", "comet", "flops_profiler", "comms_logger",
        "elasticity", "amp", "autotuning", "curriculum_learning", "data_efficiency",
        "progressive_layer_drop", "eigenvalue", "nebula"}) {
    Section block = top.section(key);
    bool enabled = false;
    block.read_bool("enabled", enabled);
    if (enabled) block.fail("enabled", fmt::format("{} is not implemented yet", key));
  }
  // Blocks that ask for their feature by being present.
  for (std::string_view key : {"sparse_attention"}) {
    if (top.take(key) != nullptr) top.fail(key, "not implemented yet");
  }
}

}  // namespace

Config parse_config(const std::string& json_text, const std::string& source_name, int world_size,
                    std::vector<std::string>* warnings) {
  ParseContext context(source_name, warnings);
  if (world_size < 1) context.fail("", fmt::format("world size {} must be >= 1", world_size));
  json root;
  try {
    root = parse_json_with_comments(json_text, source_name);
  } catch (const JsonTextError& error) {
    throw ConfigError(error.what());
  }
  if (!root.is_object()) {
    context.fail("",
                 fmt::format("expected a JSON object at the top level, got {}", root.type_name()));
  }
  Config config;
  config.source_name = source_name;
  config.world_size = world_size;
  Section top(context, &root, "");
  resolve_batch_triple(top, world_size, config);
  top.read_int("steps_per_print", config.steps_per_print, kNonNegativeCount);
  top.read_bool("wall_clock_breakdown", config.wall_clock_breakdown);
  top.read_number("gradient_clipping", config.gradient_clipping, kNonNegative);
  top.read_bool("prescale_gradients", config.prescale_gradients);
  top.read_number("gradient_predivide_factor", config.gradient_predivide_factor, kPositive);
  top.read_bool("zero_allow_untested_optimizer", config.zero_allow_untested_optimizer);
  read_optimizer(top, config.optimizer);
  read_scheduler(top, config.scheduler);
  read_zero(top, config.zero_optimization, context);
  read_precision(top, config);
  read_activation_checkpointing(top, config.activation_checkpointing, context);
  read_aio(top, config.aio, context);
  read_compression_training(top, config.compression_training);
  read_unimplemented(top);
  top.finish();
  return config;
}

Config load_config(const std::string& path, int world_size, std::vector<std::string>* warnings) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    throw ConfigError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  }
  std::string text;
  char buffer[1 << 16];
  size_t bytes_read = 0;
  while ((bytes_read = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    text.append(buffer, bytes_read);
  }
  const int read_errno = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (read_errno != 0) {
    throw ConfigError(fmt::format("{}: cannot read ({})", path, std::strerror(read_errno)));
  }
  return parse_config(text, path, world_size, warnings);
}

}  // namespace zt::dist
