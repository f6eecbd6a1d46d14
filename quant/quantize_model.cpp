// Replacing a model's linear layers by quantized ones (quant/quantize_model.h).
#include "quant/quantize_model.h"

#include <fmt/format.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>

#include "models/conv1d.h"
#include "models/lm_head.h"
#include "nn/embedding.h"
#include "nn/linear.h"
#include "quant/quantized_embedding.h"
#include "quant/quantized_linear.h"

namespace zt::quant {

namespace {

// A layer to quantize: its weight in the [out, in] layout, its bias, and how to free the
// original's tensors once it is replaced.
struct LinearLayer {
  std::string name;
  std::shared_ptr<nn::Module> module;
  Tensor weight;  // [out, in]
  Tensor bias;
};

bool is_qkv_projection(const std::string& name) {
  for (const char* suffix : {"c_attn", "q_proj", "k_proj", "v_proj"}) {
    std::string tail = std::string(".") + suffix;
    if (name == suffix || (name.size() > tail.size() &&
                           name.compare(name.size() - tail.size(), tail.size(), tail) == 0))
      return true;
  }
  return false;
}

std::optional<LinearLayer> as_linear_layer(const std::string& name,
                                           const std::shared_ptr<nn::Module>& module,
                                           const QuantizationConfig& config) {
  if (!config.qkv && is_qkv_projection(name)) return std::nullopt;
  if (auto linear = std::dynamic_pointer_cast<nn::Linear>(module))
    return LinearLayer{name, module, linear->weight, linear->bias};
  if (auto conv = std::dynamic_pointer_cast<models::Conv1D>(module))
    return LinearLayer{name, module, conv->weight.t(), conv->bias};
  if (auto head = std::dynamic_pointer_cast<models::LMHead>(module); head && config.quantize_head)
    return LinearLayer{name, module, head->weight, Tensor()};
  return std::nullopt;
}

std::vector<LinearLayer> layers_to_quantize(nn::Module& model, const QuantizationConfig& config) {
  std::vector<LinearLayer> layers;
  for (const auto& [name, module] : model.named_modules()) {
    if (name.empty()) continue;  // the model itself is never replaced
    if (std::optional<LinearLayer> layer = as_linear_layer(name, module, config))
      layers.push_back(std::move(*layer));
  }
  return layers;
}

// Drops the replaced layer's own handles on its f32 tensors (its parameter list is already
// cleared by replace_child), so their memory goes unless something else shares them.
void release_original(nn::Module& module) {
  if (auto* linear = dynamic_cast<nn::Linear*>(&module)) {
    linear->weight = Tensor();
    linear->bias = Tensor();
  } else if (auto* conv = dynamic_cast<models::Conv1D*>(&module)) {
    conv->weight = Tensor();
    conv->bias = Tensor();
  } else if (auto* head = dynamic_cast<models::LMHead*>(&module)) {
    head->weight = Tensor();
  }
}

using ModulesByName = std::map<std::string, std::shared_ptr<nn::Module>>;

void replace_module(nn::Module& model, const ModulesByName& by_name, const std::string& name,
                    std::shared_ptr<nn::Module> replacement) {
  size_t dot = name.rfind('.');
  nn::Module& parent = dot == std::string::npos ? model : *by_name.at(name.substr(0, dot));
  parent.replace_child(dot == std::string::npos ? name : name.substr(dot + 1),
                       std::move(replacement));
}

// Every nn::Embedding (GPT-2's wte and wpe, Llama's embed_tokens) becomes a QuantizedEmbedding,
// and an LM head tied to one of them a weight-only QuantizedLinear over the same codes; the
// f32 tables are freed. Returns the names replaced.
std::vector<std::string> replace_embeddings(nn::Module& model, const QuantizationConfig& config) {
  ModulesByName by_name;
  for (const auto& [name, module] : model.named_modules()) by_name[name] = module;
  std::vector<std::string> replaced;
  std::map<const TensorImpl*, std::shared_ptr<QuantizedEmbedding>> by_table;
  std::vector<std::shared_ptr<nn::Embedding>> originals;
  for (const auto& [name, module] : by_name) {
    auto embedding = std::dynamic_pointer_cast<nn::Embedding>(module);
    if (!embedding || name.empty()) continue;
    auto quantized = std::make_shared<QuantizedEmbedding>(embedding->weight, config.weight.num_bits,
                                                          config.weight.q_type);
    by_table[embedding->weight.impl()] = quantized;
    replace_module(model, by_name, name, quantized);
    originals.push_back(embedding);
    replaced.push_back(name);
  }
  for (const auto& [name, module] : by_name) {
    auto head = std::dynamic_pointer_cast<models::LMHead>(module);
    if (!head) continue;
    auto tied = by_table.find(head->weight.impl());
    if (tied == by_table.end()) continue;
    replace_module(model, by_name, name,
                   std::make_shared<QuantizedLinear>(tied->second->quantized_weight(), Tensor()));
    head->weight = Tensor();
    replaced.push_back(name);
  }
  for (const auto& embedding : originals) embedding->weight = Tensor();
  return replaced;
}

}  // namespace

std::vector<std::string> quantization_problems(nn::Module& model,
                                               const QuantizationConfig& config) {
  std::vector<std::string> problems = quantization_config_problems(config);
  if (!config.enabled || !config.weight.enabled || !problems.empty()) return problems;
  std::vector<LinearLayer> layers = layers_to_quantize(model, config);
  if (layers.empty()) {
    problems.push_back(
        fmt::format("quant: the model ({}) has no Linear layers to quantize", model.type_name()));
  }
  for (const LinearLayer& layer : layers) {
    int64_t rows = layer.weight.size(0);
    if (rows % config.weight.q_groups != 0) {
      problems.push_back(fmt::format(
          "quant.weight.q_groups: {} groups do not divide the {} rows of {} (weight {})",
          config.weight.q_groups, rows, layer.name, shape_str(layer.weight.sizes())));
    }
    if (!layer.weight.device().is_cpu()) {
      problems.push_back(fmt::format("quant: {} is on {}; quantized layers run on the CPU",
                                     layer.name, layer.weight.device().str()));
    }
  }
  return problems;
}

std::vector<std::string> quantize_linear_layers(nn::Module& model,
                                                const QuantizationConfig& config) {
  std::vector<std::string> problems = quantization_problems(model, config);
  if (!problems.empty()) {
    std::string text;
    for (const std::string& line : problems) text += (text.empty() ? "" : "\n") + line;
    throw std::invalid_argument(text);
  }
  std::vector<std::string> replaced;
  if (!config.enabled || !config.weight.enabled) return replaced;
  // The embeddings first, so that a tied head takes their codes rather than its own.
  if (config.quantize_embeddings) replaced = replace_embeddings(model, config);
  ModulesByName modules_by_name;
  for (const auto& [name, module] : model.named_modules()) modules_by_name[name] = module;
  std::optional<QuantizationType> activation_type;
  if (config.activation.enabled) activation_type = config.activation.q_type;
  for (const LinearLayer& layer : layers_to_quantize(model, config)) {
    auto quantized = std::make_shared<QuantizedLinear>(
        layer.weight, layer.bias, config.weight.num_bits, config.weight.q_groups,
        config.weight.q_type, activation_type);
    replace_module(model, modules_by_name, layer.name, quantized);
    release_original(*layer.module);
    replaced.push_back(layer.name);
  }
  return replaced;
}

WeightBytes model_weight_bytes(nn::Module& model) {
  WeightBytes bytes;
  std::set<const TensorImpl*> counted;  // a tied tensor is counted once
  auto count = [&](const Tensor& tensor, size_t& into) {
    if (!tensor.defined() || !counted.insert(tensor.impl()).second) return;
    into += tensor.nbytes();
  };
  for (const auto& [name, module] : model.named_modules()) {
    if (auto* quantized = dynamic_cast<QuantizedLinear*>(module.get())) {
      size_t matrix = quantized->matrix_bytes();
      // A tied head's codes are its embedding's, counted there.
      if (counted.insert(quantized->held_codes().impl()).second) bytes.linear_weights += matrix;
      bytes.linear_extras += quantized->weight_bytes() - matrix;
      for (const auto& [buffer_name, buffer] : module->named_buffers(false))
        counted.insert(buffer.impl());
      continue;
    }
    if (auto* embedding = dynamic_cast<QuantizedEmbedding*>(module.get())) {
      const QuantizedWeight& weight = embedding->quantized_weight();
      if (counted.insert(weight.codes.impl()).second) bytes.embeddings += weight.nbytes();
      for (const auto& [buffer_name, buffer] : module->named_buffers(false))
        counted.insert(buffer.impl());
      continue;
    }
    if (auto* embedding = dynamic_cast<nn::Embedding*>(module.get())) {
      count(embedding->weight, bytes.embeddings);
      continue;
    }
    bool is_linear =
        dynamic_cast<nn::Linear*>(module.get()) || dynamic_cast<models::Conv1D*>(module.get());
    for (const auto& [param_name, param] : module->named_parameters(false)) {
      bool is_matrix = is_linear && param_name == "weight";
      count(param,
            is_matrix ? bytes.linear_weights : (is_linear ? bytes.linear_extras : bytes.other));
    }
    for (const auto& [buffer_name, buffer] : module->named_buffers(false))
      count(buffer, bytes.other);
  }
  return bytes;
}

}  // namespace zt::quant
