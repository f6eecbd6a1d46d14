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
#include "compress/compressor_target.h"
#include "compress/head_pruning.h"
#include "compress/mask_scores.h"
#include "compress/pruning_masks.h"
#include "compress/quantizer.h"
#include "compress/snip_momentum_pruner.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/config.h"
#include "nn/conv2d.h"

namespace zt::compress {
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

Compressor::Compressor(nn::Module& model, const dist::CompressionConfig& config,
                       std::function<int64_t()> current_step)
    : config_(config), current_step_(std::move(current_step)) {
  check_compression_supported(model, config_);
  if (config_.sparse_pruning.enabled && config_.sparse_pruning.method == "snip_momentum")
    snip_ = std::make_unique<SnipMomentumPruner>(config_.sparse_pruning);
  targets_ = select_targets(model, config_, snip_.get());
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
  return quantize_inputs(target, inputs, step);
}

// Activation quantization of the module's first input (nullopt: the input as it is).
std::optional<nn::TensorList> Compressor::quantize_inputs(Target& target,
                                                          const nn::TensorList& inputs,
                                                          int64_t step) {
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
