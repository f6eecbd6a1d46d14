// Which modules each enabled technique of compression_training compresses, and with what:
// the groups' patterns resolved on the model's Linear, Conv1D and Conv2d modules, the learned
// scores and range buffers they need found or added, and what the model cannot take refused
// with the key named.
#include <fmt/format.h>

#include <algorithm>
#include <string_view>

#include "compress/activation_range.h"
#include "compress/compressor_target.h"
#include "compress/head_pruning.h"
#include "compress/mask_scores.h"
#include "compress/module_selection.h"
#include "compress/snip_momentum_pruner.h"
#include "core/factory.h"
#include "dist/config.h"
#include "models/conv1d.h"
#include "nn/conv2d.h"
#include "nn/linear.h"

namespace zt::compress {
namespace {

void refuse_unimplemented(const dist::CompressionConfig& config) {
  auto refuse_method = [](const dist::CompressionTechnique& technique, const std::string& method,
                          std::string_view key, std::string_view implemented) {
    if (technique.enabled && implemented.find("\"" + method + "\"") == std::string_view::npos) {
      throw dist::ConfigError(
          fmt::format("compression_training.{}.shared_parameters.method: \"{}\" is not "
                      "implemented yet (only {})",
                      key, method, implemented));
    }
  };
  refuse_method(config.sparse_pruning, config.sparse_pruning.method, "sparse_pruning",
                "\"l1\", \"topk\" and \"snip_momentum\"");
  refuse_method(config.head_pruning, config.head_pruning.method, "head_pruning", "\"topk\"");
  refuse_method(config.row_pruning, config.row_pruning.method, "row_pruning",
                "\"l1\" and \"topk\"");
  refuse_method(config.channel_pruning, config.channel_pruning.method, "channel_pruning",
                "\"l1\" and \"topk\"");
}

// Head pruning and layer reduction need a model with attention heads / layers under a prefix.
void check_model_structure(nn::Module& model, const dist::CompressionConfig& config) {
  std::vector<std::string> attention, all_names;
  for (auto& [name, module] : model.named_modules()) {
    all_names.push_back(name);
    if (module->type_name().find("Attention") != std::string::npos) attention.push_back(name);
  }
  if (config.head_pruning.enabled) {
    if (attention.empty()) {
      throw dist::ConfigError(fmt::format(
          "compression_training.head_pruning: the model ({}) has no attention heads to prune",
          model.type_name()));
    }
  }
  const dist::LayerReductionConfig& reduction = config.layer_reduction;
  if (reduction.enabled) {
    bool found = false;
    for (const std::string& name : all_names)
      found |= name.rfind(reduction.module_name_prefix + ".", 0) == 0;
    if (!found) {
      throw dist::ConfigError(fmt::format(
          "compression_training.layer_reduction.module_name_prefix: \"{}\" names no layers of "
          "the model ({})",
          reduction.module_name_prefix, model.type_name()));
    }
  }
}

// The target of a selected module, made when a technique first selects it.
Compressor::Target& target_of(Targets& targets, const NamedModule& selected) {
  for (auto& target : targets)
    if (target->name == selected.name) return *target;
  auto target = std::make_unique<Compressor::Target>();
  target->name = selected.name;
  target->module = selected.module;
  target->type = selected.module->type_name();
  target->input_dim = input_dim_of(target->type);
  if (auto* linear = dynamic_cast<nn::Linear*>(selected.module.get())) {
    target->weight_slot = &linear->weight;
    target->bias_slot = &linear->bias;
  } else if (auto* conv1d = dynamic_cast<models::Conv1D*>(selected.module.get())) {
    target->weight_slot = &conv1d->weight;
    target->bias_slot = &conv1d->bias;
  } else {
    auto* conv = dynamic_cast<nn::Conv2d*>(selected.module.get());
    target->weight_slot = &conv->weight;
    target->bias_slot = &conv->bias;
  }
  targets.push_back(std::move(target));
  return *targets.back();
}

// The module's static activation range buffer, added (uncalibrated, f32 on the weight's device)
// unless the module has it already (a model that loaded a state dict holding it).
Tensor range_buffer_of(nn::Module& module, const Tensor& weight) {
  for (const auto& [name, buffer] : module.named_buffers(false))
    if (name == kActivationRangeName) return buffer;
  return nn::add_buffer(module, kActivationRangeName,
                        zeros({2}, {.dtype = DType::f32, .device = weight.device()}));
}

// A topk technique's scores on the module, added by add_mask_scores before initialize.
Tensor scores_of(const Compressor::Target& target, const char* name, std::string_view key) {
  Tensor scores = own_parameter(*target.module, name);
  if (!scores.defined()) {
    throw dist::ConfigError(fmt::format(
        "compression_training.{}: {} has no learned {}; call compress::add_mask_scores(model, "
        "config) before zt::initialize",
        key, target.name, name));
  }
  return scores;
}

std::string type_named(const std::vector<NamedModule>& candidates, const std::string& name) {
  for (const NamedModule& candidate : candidates)
    if (candidate.name == name) return candidate.module->type_name();
  return "";
}

void select_quantization(Targets& targets, const std::vector<NamedModule>& candidates,
                         const dist::CompressionConfig& config) {
  for (const dist::CompressionGroup& group : config.weight_quantization.groups) {
    if (!config.weight_quantization.enabled) break;
    for (const Selection& selection : select_modules(candidates, group)) {
      Compressor::Target& target = target_of(targets, selection.target);
      target.quantization = &group;
      const int64_t groups = config.weight_quantization.quantize_groups;
      if (target.weight_slot->numel() % groups != 0) {
        throw dist::ConfigError(fmt::format(
            "compression_training.weight_quantization.shared_parameters.quantize_groups: {} "
            "does not divide the {} weights of {}",
            groups, target.weight_slot->numel(), target.name));
      }
    }
  }
  for (const dist::CompressionGroup& group : config.activation_quantization.groups) {
    if (!config.activation_quantization.enabled) break;
    if (config.activation_quantization.range_calibration == "static" && group.bits < 3) {
      throw dist::ConfigError(fmt::format(
          "{}.params.bits: {} with range_calibration \"static\" (expected >= 3: one fixed "
          "grid)",
          group.path, group.bits));
    }
    for (const Selection& selection : select_modules(candidates, group)) {
      Compressor::Target& target = target_of(targets, selection.target);
      target.activation_bits = group.bits;
      if (config.activation_quantization.range_calibration == "static")
        target.activation_range = range_buffer_of(*target.module, *target.weight_slot);
    }
  }
}

// snip_momentum prunes every selected module to the shared dense_ratio (as DeepSpeed, which
// hands the pruner only the shared parameters); the groups choose the modules.
void select_sparse_and_heads(Targets& targets, const std::vector<NamedModule>& candidates,
                             const dist::CompressionConfig& config, SnipMomentumPruner* snip) {
  for (const dist::CompressionGroup& group : config.sparse_pruning.groups) {
    if (!config.sparse_pruning.enabled) break;
    for (const Selection& selection :
         select_modules(candidates, group, config.sparse_pruning.excluded_modules)) {
      Compressor::Target& target = target_of(targets, selection.target);
      target.sparse_ratio = group.dense_ratio;
      if (config.sparse_pruning.method == "topk")
        target.sparse_scores = scores_of(target, kSparseScoresName, "sparse_pruning");
      if (snip != nullptr && target.snip_index < 0) {
        target.snip_index = int64_t(
            snip->add_module(target.name, target.weight_slot->sizes(), target.input_dim == 0));
      }
    }
  }
  for (const dist::CompressionGroup& group : config.head_pruning.groups) {
    if (!config.head_pruning.enabled) break;
    for (const Selection& selection : select_modules(candidates, group)) {
      Compressor::Target& target = target_of(targets, selection.target);
      const int64_t heads = config.head_pruning.num_heads;
      const int64_t inputs = target.weight_slot->size(target.input_dim);
      if (inputs % heads != 0) {
        throw dist::ConfigError(fmt::format(
            "compression_training.head_pruning.shared_parameters.num_heads: {} heads do not "
            "split the {} input features of {}",
            heads, inputs, target.name));
      }
      target.head_scores = scores_of(target, kHeadScoresName, "head_pruning");
      target.head_ratio = group.dense_ratio;
      target.related_modules = selection.related_modules;
    }
  }
}

// Row pruning (Linear rows) and channel pruning (Conv2d output channels) are the same mask.
void select_rows(Targets& targets, const std::vector<NamedModule>& candidates,
                 const dist::CompressionConfig& config) {
  for (const dist::StructuredPruningConfig* technique :
       {&config.row_pruning, &config.channel_pruning}) {
    if (!technique->enabled) continue;
    for (const dist::CompressionGroup& group : technique->groups) {
      for (const Selection& selection : select_modules(candidates, group)) {
        Compressor::Target& target = target_of(targets, selection.target);
        if (target.input_dim == 0) {
          throw dist::ConfigError(fmt::format(
              "{}.modules: {} is a Conv1D (weights stored [in, out]); row pruning of it is not "
              "implemented yet",
              group.path, target.name));
        }
        target.row_ratio = group.dense_ratio;
        if (technique->method == "topk") {
          target.row_scores =
              scores_of(target, row_scores_name(target.type),
                        technique == &config.row_pruning ? "row_pruning" : "channel_pruning");
        }
        target.row_offset = technique->schedule_offset;
        target.row_offset_end = technique->schedule_offset_end;
        target.row_stride = technique->schedule_offset_stride;
        target.related_modules = selection.related_modules;
      }
    }
  }
}

}  // namespace

void check_compression_supported(nn::Module& model, const dist::CompressionConfig& config) {
  refuse_unimplemented(config);
  check_model_structure(model, config);
}

Targets select_targets(nn::Module& model, const dist::CompressionConfig& config,
                       SnipMomentumPruner* snip) {
  Targets targets;
  const std::vector<NamedModule> candidates = compressible_modules(model);
  select_quantization(targets, candidates, config);
  select_sparse_and_heads(targets, candidates, config, snip);
  if (snip != nullptr) snip->check_blocks();
  select_rows(targets, candidates, config);
  if (config.head_pruning.enabled) {
    std::vector<std::string> head_pruned;
    for (const auto& target : targets)
      if (target->head_ratio > 0.0) head_pruned.push_back(target->name);
    check_grouped_heads(model, config.head_pruning.num_heads, head_pruned);
  }
  for (auto& target : targets) {
    for (const std::string& related : target->related_modules)
      target->related_types.push_back(type_named(candidates, related));
  }
  auto position = [&](const std::unique_ptr<Compressor::Target>& target) {
    for (size_t i = 0; i < candidates.size(); ++i)
      if (candidates[i].name == target->name) return i;
    return candidates.size();
  };
  std::stable_sort(targets.begin(), targets.end(),
                   [&](const auto& a, const auto& b) { return position(a) < position(b); });
  return targets;
}

}  // namespace zt::compress
