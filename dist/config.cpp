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
#include "dist/config_monitor_blocks.h"
#include "dist/config_offload_blocks.h"
#include "dist/config_optimizer_blocks.h"
#include "dist/config_pipeline_reader.h"
#include "dist/config_section.h"
#include "dist/config_sparse_attention.h"
#include "dist/config_zero_block.h"
#include "dist/json_comments.h"

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
  const size_t problems_before = top.problems_so_far();
  if (top.read_int("train_batch_size", value, kCount)) total = value;
  if (top.read_int("train_micro_batch_size_per_gpu", value, kCount)) micro = value;
  if (top.read_int("gradient_accumulation_steps", value, kCount)) accumulation = value;
  if (top.problems_so_far() != problems_before) return;  // the triple is already reported
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

// ---- precision (fact sheet 1.6) ----

void read_precision(Section& top, Config& config) {
  // DeepSpeed reads these blocks with dict.get and drops "auto" for the default (the Hugging
  // Face integration fills its "auto" values before DeepSpeed sees them: dist/config_auto.h).
  Section fp16 = top.section("fp16", {.auto_keeps_default = true});
  fp16.read_bool("enabled", config.fp16.enabled);
  fp16.read_bool("auto_cast", config.fp16.auto_cast);
  fp16.read_number("loss_scale", config.fp16.loss_scale, kNonNegative);
  fp16.read_int("initial_scale_power", config.fp16.initial_scale_power,
                IntRange{.min = 0, .max = 64});
  fp16.read_int("loss_scale_window", config.fp16.loss_scale_window, kCount);
  fp16.read_int("hysteresis", config.fp16.hysteresis, kCount);
  fp16.read_bool("consecutive_hysteresis", config.fp16.consecutive_hysteresis);
  fp16.read_number("min_loss_scale", config.fp16.min_loss_scale, kPositive);
  fp16.require_default("fp16_master_weights_and_grads", false,
                       "not implemented: the master weights and gradients would be fp16, not "
                       "fp32");
  fp16.finish();

  const bool alias_used = top.take("bfloat16") != nullptr;
  if (alias_used && top.take("bf16") != nullptr) {
    top.fail("bfloat16", "deprecated alias of \"bf16\"; set one of them, not both");
  }
  Section bf16 = top.section(alias_used ? "bfloat16" : "bf16", {.auto_keeps_default = true});
  bf16.read_bool("enabled", config.bf16.enabled);
  bf16.require_default("immediate_grad_update", false);
  bf16.require_default("bf16_master_weights_and_grads", false,
                       "not implemented: the master weights and gradients would be bf16, not "
                       "fp32");
  bf16.require_default("bf16_optimizer_states", false,
                       "not implemented: the optimizer's moments would be bf16, not fp32");
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
  // DeepSpeed's checkpointing.configure asserts this.
  if (checkpointing.contiguous_memory_optimization && !checkpointing.partition_activations) {
    section.reject("contiguous_memory_optimization", "needs \"partition_activations\": true");
  }
  // Without number_checkpoints DeepSpeed accepts the config and asserts only when a program
  // configures checkpointing without a count; zt::initialize does the same (see there).
  if (checkpointing.cpu_checkpointing && !checkpointing.partition_activations) {
    section.reject("cpu_checkpointing", "needs \"partition_activations\": true");
  }
  if (checkpointing.partition_activations) {
    context.warn(section.path_of("partition_activations"),
                 "no model parallelism (tensor parallel size 1); activations are not "
                 "partitioned");
  }
}

// ---- tensor_parallel: the tensor axis of the rank grid ----

// autotp_size (or its spellings tp_size and tp.tp_size) sets the tensor-parallel size; the
// data-parallel size the batch triple uses is then the world divided by it, as DeepSpeed
// divides the world by tp (and pp).
void read_tensor_parallel(Section& top, Config& config) {
  Section tensor_parallel = top.section("tensor_parallel", {.auto_keeps_default = true});
  int64_t size = 1;
  std::string size_key;
  for (std::string_view key : {"autotp_size", "tp_size"}) {
    int64_t value = 0;
    if (tensor_parallel.read_int(key, value, kNonNegativeCount) && value > 1) {
      size = value;
      size_key = std::string(key);
    }
  }
  Section tp = tensor_parallel.section("tp");
  int64_t nested = 1;
  if (tp.read_int("tp_size", nested, kCount) && nested > 1) {
    if (size > 1 && nested != size) {
      tp.reject("tp_size", fmt::format("{}: differs from {} {}", nested, size_key, size));
    }
    size = nested;
    size_key = "tp.tp_size";
  }
  tp.ignore({"tp_grain_size"});
  tp.finish();
  tensor_parallel.ignore({"tp_overlap_comm", "tp_grain_size", "partition_config",
                          "injection_policy_tuple", "keep_module_on_host"});
  tensor_parallel.finish();
  if (size > 1 && config.world_size % size != 0) {
    tensor_parallel.reject(size_key,
                           fmt::format("{}: does not divide the world size {} (data-parallel "
                                       "size = world / tensor-parallel size)",
                                       size, config.world_size));
    return;
  }
  config.tensor_parallel_size = int(size);
  config.world_size /= int(size);
}

// ---- sections and keys of features this engine does not implement yet ----

// Keys and blocks that would change what is trained: each rejected, when it asks for its
// feature, with what it would change (never an "unknown key" warning).
void read_training_changers(Section& top) {
  top.require_default("sequence_parallel_size", 1,
                      "not implemented; would split each sequence across ranks and change the "
                      "data-parallel size");
  // Blocks whose feature would change the values trained, asked for by "enabled": true.
  const std::pair<std::string_view, std::string_view> enabled_changes_training[] = {
      {"quantize_training",
       "quantization-aware training is not implemented (it would round the "
       "weights during training)"},
      {"torch_autocast",
       "torch_autocast is not implemented (it would run chosen layers in 16 "
       "bits); use fp16 or bf16"},
      {"hybrid_engine",
       "the hybrid engine is not implemented (it switches the model to "
       "inference kernels for generation between training steps)"},
  };
  for (const auto& [key, reason] : enabled_changes_training) {
    Section block = top.section(key);
    bool enabled = false;
    block.read_bool("enabled", enabled);
    if (enabled) block.reject("enabled", reason);
  }
}

void read_unimplemented(Section& top) {
  const std::pair<std::string_view, json> top_defaults_only[] = {
      {"dump_state", false},
      {"sparse_gradients", false},
      {"dataloader_drop_last", false},
      {"graph_harvesting", false},
      {"communication_data_type", nullptr},
      {"zero_force_ds_cpu_optimizer", true},
  };
  for (const auto& [key, default_value] : top_defaults_only)
    top.require_default(key, default_value);
  // DeepSpeed stores it and never reads it.
  bool disable_allgather = false;
  top.read_bool("disable_allgather", disable_allgather);
  read_training_changers(top);
  // Read by DeepSpeed only for torch.compile and its throughput timers: nothing here trains
  // differently with them.
  top.ignore({"compile", "timers"});

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
       {"wandb", "comet", "elasticity", "amp", "autotuning", "curriculum_learning",
        "data_efficiency", "progressive_layer_drop", "eigenvalue", "nebula"}) {
    Section block = top.section(key);
    bool enabled = false;
    block.read_bool("enabled", enabled);
    if (enabled) block.reject("enabled", fmt::format("{} is not implemented yet", key));
  }
}

}  // namespace

namespace {

// Every section of the file, each read on its own: a problem in one is recorded and the next is
// read all the same, so that one run lists every problem.
void read_sections(Section& top, const ParseContext& context, Config& config) {
  context.read_on([&] { read_tensor_parallel(top, config); });
  context.read_on([&] { resolve_batch_triple(top, config.world_size, config); });
  context.read_on([&] {
    top.read_int("steps_per_print", config.steps_per_print, kNonNegativeCount);
    top.read_bool("wall_clock_breakdown", config.wall_clock_breakdown);
    top.read_number("gradient_clipping", config.gradient_clipping, kNonNegative);
    top.read_bool("prescale_gradients", config.prescale_gradients);
    top.read_number("gradient_predivide_factor", config.gradient_predivide_factor, kPositive);
    top.read_bool("zero_allow_untested_optimizer", config.zero_allow_untested_optimizer);
  });
  context.read_on([&] { read_optimizer(top, config.optimizer); });
  context.read_on([&] { read_scheduler(top, config.scheduler); });
  context.read_on([&] { read_zero(top, config.zero_optimization, context); });
  context.read_on([&] { read_precision(top, config); });
  context.read_on(
      [&] { read_activation_checkpointing(top, config.activation_checkpointing, context); });
  context.read_on([&] { read_aio(top, config.aio, context); });
  context.read_on([&] { read_sparse_attention(top, config.sparse_attention, context); });
  context.read_on([&] { read_monitor_blocks(top, config.observe); });
  context.read_on([&] { read_compression_training(top, config.compression_training); });
  context.read_on([&] { read_pipeline(top, config.pipeline); });
  context.read_on([&] { read_unimplemented(top); });
  context.read_on([&] { top.finish(); });
}

}  // namespace

ConfigError::ConfigError(std::vector<std::string> errors, std::vector<std::string> warnings)
    : std::runtime_error(fmt::format("{}", fmt::join(errors, "\n"))),
      errors_(std::move(errors)),
      warnings_(std::move(warnings)) {}

Config parse_config(const std::string& json_text, const std::string& source_name, int world_size,
                    std::vector<std::string>* warnings, const ProgramValues& program) {
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
  config.auto_resolved = resolve_auto_values(root, program, world_size, source_name);
  Section top(context, &root, "");
  try {
    read_sections(top, context, config);
  } catch (const SectionAbandoned&) {
    // A reader outside read_on failed: what it recorded is reported with the rest.
  }
  if (!context.errors().empty()) throw context.all_problems();
  return config;
}

Config load_config(const std::string& path, int world_size, std::vector<std::string>* warnings,
                   const ProgramValues& program) {
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
  return parse_config(text, path, world_size, warnings, program);
}

}  // namespace zt::dist
