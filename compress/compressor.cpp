// The compressor's hooks. Masks and quantized values are computed on the host in f32 from the
// parameter's current values (the parameter may be 16-bit or on a device) and brought back in
// its dtype and device; they enter the graph as constants, so the gradient of a masked weight
// is the masked gradient and that of a quantized one passes straight through.
#include "compress/compressor.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "compress/activation_range.h"
#include "compress/head_pruning.h"
#include "compress/mask_scores.h"
#include "compress/module_selection.h"
#include "compress/pruning_masks.h"
#include "compress/quantizer.h"
#include "compress/snip_momentum_pruner.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/config.h"
#include "models/conv1d.h"
#include "nn/conv2d.h"
#include "nn/linear.h"

namespace zt::compress {

struct Compressor::Target {
  std::string name;
  std::shared_ptr<nn::Module> module;
  Tensor* weight_slot = nullptr;  // the module's member its forward reads
  Tensor* bias_slot = nullptr;
  Tensor saved_weight, saved_bias;  // the parameters, while the slots hold compressed forms
  std::string type;
  int input_dim = 1;  // the weight's dim of input features (compress/head_pruning.h)
  std::vector<std::string> related_modules, related_types;
  // Settings from the groups that selected the module (0 / null: the technique is off here).
  const dist::CompressionGroup* quantization = nullptr;
  int activation_bits = 0;
  Tensor activation_range;  // range_calibration "static": the module's buffer [lowest, highest]
  double sparse_ratio = 0.0, row_ratio = 0.0;
  int64_t row_offset = 0, row_offset_end = 0, row_stride = 1;  // the gradual schedule
  Tensor sparse_scores;     // topk sparse pruning's learned scores (undefined: l1)
  Tensor row_scores;        // topk row / channel pruning's learned scores (undefined: l1)
  int64_t snip_index = -1;  // the module's index in the snip_momentum pruner (-1: none)
  Tensor head_scores;       // head pruning's learned scores, one a head
  double head_ratio = 0.0;
  // Masks, cached with the dense ratio they were made for.
  double sparse_mask_ratio = 1.0, row_mask_ratio = 1.0;
  std::vector<float> sparse_mask, row_mask;
  Tensor sparse_mask_tensor, row_mask_tensor, bias_mask_tensor;
  std::vector<int64_t> hooks;
};

namespace {

std::vector<float> host_values(const Tensor& tensor) {
  Tensor host = tensor.detach().to(DType::f32).to(Device::cpu()).contiguous();
  const float* data = host.data_ptr<float>();
  return std::vector<float>(data, data + host.numel());
}

// `values` as a tensor of `shape` in `like`'s dtype and device.
Tensor tensor_like(const std::vector<float>& values, const Shape& shape, const Tensor& like) {
  Tensor host = empty(shape);
  std::memcpy(host.data_ptr<float>(), values.data(), values.size() * sizeof(float));
  return host.to(like.dtype()).to(like.device());
}

// Forward: exactly `quantized` (v - v is 0); backward: the gradient of `values` unchanged.
Tensor straight_through(const Tensor& values, const Tensor& quantized) {
  return add(quantized, sub(values, values.detach()));
}

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

}  // namespace

int Compressor::bits_at(const dist::CompressionGroup& group, int64_t offset, int64_t step) {
  if (step < offset) return 0;
  if (group.quantization_period == 0) return group.target_bits;
  int bits = group.start_bits;
  int64_t period = group.quantization_period;
  int64_t next_drop = offset + period;
  while (bits > group.target_bits && step >= next_drop) {
    --bits;
    period *= 2;
    next_drop += period;
  }
  return bits;
}

namespace {

using Targets = std::vector<std::unique_ptr<Compressor::Target>>;

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

Compressor::Compressor(nn::Module& model, const dist::CompressionConfig& config,
                       std::function<int64_t()> current_step)
    : config_(config), current_step_(std::move(current_step)) {
  refuse_unimplemented(config_);
  check_model_structure(model, config_);
  const std::vector<NamedModule> candidates = compressible_modules(model);
  select_quantization(targets_, candidates, config_);
  if (config_.sparse_pruning.enabled && config_.sparse_pruning.method == "snip_momentum")
    snip_ = std::make_unique<SnipMomentumPruner>(config_.sparse_pruning);
  select_sparse_and_heads(targets_, candidates, config_, snip_.get());
  if (snip_) snip_->check_blocks();
  select_rows(targets_, candidates, config_);
  if (config_.head_pruning.enabled) {
    std::vector<std::string> head_pruned;
    for (const auto& target : targets_)
      if (target->head_ratio > 0.0) head_pruned.push_back(target->name);
    check_grouped_heads(model, config_.head_pruning.num_heads, head_pruned);
  }
  for (auto& target : targets_) {
    for (const std::string& related : target->related_modules)
      target->related_types.push_back(type_named(candidates, related));
  }
  // Model order, whichever technique selected a module first.
  auto position = [&](const std::unique_ptr<Target>& target) {
    for (size_t i = 0; i < candidates.size(); ++i)
      if (candidates[i].name == target->name) return i;
    return candidates.size();
  };
  std::stable_sort(targets_.begin(), targets_.end(),
                   [&](const auto& a, const auto& b) { return position(a) < position(b); });
  for (auto& target : targets_) {
    Target* raw = target.get();
    raw->hooks.push_back(target->module->register_forward_pre_hook(
        [this, raw](nn::Module&, const nn::TensorList& inputs) {
          return before_forward(*raw, inputs);
        }));
    raw->hooks.push_back(target->module->register_forward_hook(
        [this, raw](nn::Module&, const nn::TensorList&, const nn::TensorList&) {
          after_forward(*raw);
        }));
  }
}

void Compressor::set_snip_gradient_reduction(std::function<void(std::vector<float>&)> average) {
  if (snip_) snip_->set_gradient_reduction(std::move(average));
}

Compressor::~Compressor() {
  for (auto& target : targets_) {
    for (int64_t hook : target->hooks) target->module->remove_hook(hook);
  }
}

bool Compressor::head_pruning_on(const Target& target, int64_t step) const {
  return target.head_ratio > 0.0 && step >= config_.head_pruning.schedule_offset;
}

void Compressor::update_masks(Target& target, int64_t step, const Tensor& weight) {
  const dist::SparsePruningConfig& sparse = config_.sparse_pruning;
  const double sparse_ratio =
      target.sparse_ratio == 0.0 || target.snip_index >= 0
          ? 1.0
          : gradual_dense_ratio(step, sparse.schedule_offset, sparse.schedule_offset_end,
                                sparse.schedule_offset_stride, target.sparse_ratio);
  if (target.sparse_scores.defined()) {
    target.sparse_mask_ratio = sparse_ratio;  // topk: the forward ranks the scores each time
  } else if (sparse_ratio != target.sparse_mask_ratio) {
    target.sparse_mask_ratio = sparse_ratio;
    target.sparse_mask = sparse_ratio == 1.0 ? std::vector<float>{}
                                             : l1_sparse_mask(host_values(weight), sparse_ratio);
    target.sparse_mask_tensor = target.sparse_mask.empty()
                                    ? Tensor()
                                    : tensor_like(target.sparse_mask, weight.sizes(), weight);
  }
  const double row_ratio = target.row_ratio == 0.0
                               ? 1.0
                               : gradual_dense_ratio(step, target.row_offset, target.row_offset_end,
                                                     target.row_stride, target.row_ratio);
  if (target.row_scores.defined()) {
    target.row_mask_ratio = row_ratio;  // topk: the forward ranks the scores each time
  } else if (row_ratio != target.row_mask_ratio) {
    target.row_mask_ratio = row_ratio;
    target.row_mask = row_ratio == 1.0
                          ? std::vector<float>{}
                          : l1_row_mask(host_values(weight), weight.size(0), row_ratio);
    if (target.row_mask.empty()) {
      target.row_mask_tensor = target.bias_mask_tensor = Tensor();
    } else {
      Shape broadcast(size_t(weight.dim()), 1);
      broadcast[0] = weight.size(0);
      target.row_mask_tensor = tensor_like(target.row_mask, broadcast, weight);
      target.bias_mask_tensor = tensor_like(target.row_mask, {weight.size(0)}, weight);
    }
  }
}

std::optional<nn::TensorList> Compressor::before_forward(Target& target,
                                                         const nn::TensorList& inputs) {
  const int64_t step = current_step_();
  target.saved_weight = *target.weight_slot;
  target.saved_bias = *target.bias_slot;
  update_masks(target, step, target.saved_weight);
  Tensor weight = target.saved_weight, bias = target.saved_bias;
  if (target.sparse_scores.defined()) {
    if (target.sparse_mask_ratio < 1.0)
      weight = mul(weight, topk_binarize(target.sparse_scores, target.sparse_mask_ratio));
  } else if (target.sparse_mask_tensor.defined()) {
    weight = mul(weight, target.sparse_mask_tensor);
  } else if (target.snip_index >= 0) {
    weight = snip_->apply(size_t(target.snip_index), weight, step);
  }
  if (head_pruning_on(target, step)) {
    weight =
        mask_heads(weight, topk_binarize(target.head_scores, target.head_ratio), target.input_dim);
  }
  if (target.row_scores.defined() && target.row_mask_ratio < 1.0) {
    // The same 0/1 mask scales the row's weights and bias, so the scores' gradient has both.
    Tensor mask = topk_binarize(target.row_scores, target.row_mask_ratio);
    weight = mul(weight, mask);
    if (bias.defined()) bias = mul(bias, mask.reshape({weight.size(0)}));
  } else if (target.row_mask_tensor.defined()) {
    weight = mul(weight, target.row_mask_tensor);
    if (bias.defined()) bias = mul(bias, target.bias_mask_tensor);
  }
  const dist::WeightQuantizationConfig& quantization = config_.weight_quantization;
  if (target.quantization != nullptr) {
    const int bits = bits_at(*target.quantization, quantization.schedule_offset, step);
    if (bits > 0) {
      std::vector<float> values = host_values(weight);
      fake_quantize(values,
                    {.bits = bits,
                     .groups = quantization.quantize_groups,
                     .symmetric = quantization.quantization_type == "symmetric",
                     .stochastic = quantization.rounding == "stochastic",
                     .seed = uint64_t(step) * 1000003u + std::hash<std::string>{}(target.name)});
      weight = straight_through(weight, tensor_like(values, weight.sizes(), weight));
    }
  }
  *target.weight_slot = weight;
  *target.bias_slot = bias;
  const dist::ActivationQuantizationConfig& activations = config_.activation_quantization;
  if (target.activation_bits == 0 || step < activations.schedule_offset || inputs.empty())
    return std::nullopt;
  nn::TensorList quantized_inputs = inputs;
  const Tensor& input = inputs[0];
  std::vector<float> values = host_values(input);
  const bool symmetric = activations.quantization_type == "symmetric";
  if (activations.range_calibration == "static") {
    // One range for the whole input, moved by training forwards and fixed in evaluation; an
    // evaluation before any training forward has no range yet and stays in full precision.
    const std::vector<float> bounds = host_values(target.activation_range);
    ActivationRange range(bounds[0], bounds[1]);
    if (target.module->is_training()) {
      range.observe(values);
      NoGradGuard no_grad;
      ops::copy_(target.activation_range,
                 tensor_like({range.lowest(), range.highest()}, {2}, target.activation_range));
    }
    if (!range.calibrated()) return std::nullopt;
    fake_quantize_in_range(values, target.activation_bits, symmetric, range.lowest(),
                           range.highest());
    quantized_inputs[0] = straight_through(input, tensor_like(values, input.sizes(), input));
    return quantized_inputs;
  }
  // Dynamic range per token: a Linear's rows of features, a Conv2d's samples.
  const int64_t tokens = dynamic_cast<nn::Conv2d*>(target.module.get())
                             ? input.size(0)
                             : input.numel() / input.size(-1);
  fake_quantize(values, {.bits = target.activation_bits, .groups = tokens, .symmetric = symmetric});
  quantized_inputs[0] = straight_through(input, tensor_like(values, input.sizes(), input));
  return quantized_inputs;
}

void Compressor::after_forward(Target& target) {
  *target.weight_slot = target.saved_weight;
  *target.bias_slot = target.saved_bias;
  target.saved_weight = target.saved_bias = Tensor();
}

std::vector<ModuleCompression> Compressor::state_at(int64_t step) {
  NamedTensors parameters;
  for (auto& target : targets_) {
    for (auto& [name, tensor] : target->module->named_parameters(false))
      parameters.emplace_back(target->name + "." + name, tensor);
  }
  return state_at(step, parameters);
}

std::vector<ModuleCompression> Compressor::state_at(int64_t step, const NamedTensors& state) {
  auto parameter = [&](const Target& target, const std::string& member) {
    for (const auto& [name, tensor] : state)
      if (name == target.name + "." + member) return tensor;
    throw std::invalid_argument(
        fmt::format("compressor: the state has no {}.{}", target.name, member));
  };
  std::vector<ModuleCompression> states;
  for (auto& target : targets_) {
    update_masks(*target, step, parameter(*target, "weight"));
    ModuleCompression state;
    state.name = target->name;
    state.type = target->module->type_name();
    state.sparse_mask =
        target->snip_index >= 0 ? snip_->mask(size_t(target->snip_index)) : target->sparse_mask;
    if (target->sparse_scores.defined() && target->sparse_mask_ratio < 1.0)
      state.sparse_mask =
          topk_mask(host_values(parameter(*target, kSparseScoresName)), target->sparse_mask_ratio);
    if (head_pruning_on(*target, step)) {
      state.head_mask =
          topk_mask(host_values(parameter(*target, kHeadScoresName)), target->head_ratio);
    }
    state.row_mask = target->row_mask;
    if (target->row_scores.defined()) {
      state.row_mask =
          target->row_mask_ratio < 1.0
              ? topk_mask(host_values(parameter(*target, row_scores_name(target->type))),
                          target->row_mask_ratio)
              : std::vector<float>{};
    }
    if (target->quantization != nullptr) {
      state.weight_bits =
          bits_at(*target->quantization, config_.weight_quantization.schedule_offset, step);
      state.quantize_groups = config_.weight_quantization.quantize_groups;
      state.symmetric = config_.weight_quantization.quantization_type == "symmetric";
    }
    if (step >= config_.activation_quantization.schedule_offset)
      state.activation_bits = target->activation_bits;
    state.related_modules = target->related_modules;
    state.related_types = target->related_types;
    states.push_back(std::move(state));
  }
  return states;
}

}  // namespace zt::compress
