// The per-type MAC formulas of the flops profiler.
#include "observe/module_flops.h"

#include <string>

namespace zt::observe {

namespace {

int64_t numel_of(const nn::TensorList& tensors, size_t index) {
  return index < tensors.size() && tensors[index].defined() ? tensors[index].numel() : 0;
}

// A parameter's tensor by name among the module's own (not its children's).
Tensor own_parameter(const nn::Module& module, const std::string& name) {
  for (auto& [parameter_name, tensor] : module.named_parameters(/*recurse=*/false)) {
    if (parameter_name == name) return tensor;
  }
  return Tensor();
}

}  // namespace

ModuleCost module_own_cost(const nn::Module& module, const nn::TensorList& inputs,
                           const nn::TensorList& outputs) {
  const std::string type = module.type_name();
  ModuleCost cost;
  if (inputs.empty() || !inputs[0].defined() || inputs[0].dim() == 0) return cost;
  const Tensor& input = inputs[0];
  if (type == "Linear" || type == "Conv1D" || type == "LMHead") {
    cost.macs = numel_of(outputs, 0) * input.size(-1);
    cost.flops = 2 * cost.macs;
  } else if (type == "Conv2d") {
    Tensor weight = own_parameter(module, "weight");  // [out, in / groups, kh, kw]
    if (!weight.defined()) return cost;
    cost.macs = numel_of(outputs, 0) * (weight.numel() / weight.size(0));
    bool has_bias = own_parameter(module, "bias").defined();
    cost.flops = 2 * cost.macs + (has_bias ? numel_of(outputs, 0) : 0);
  } else if (type == "GPT2Attention" || type == "LlamaAttention") {
    // x [B, T, C]; outputs (y, keys [B, H_kv, T_keys, D], values).
    if (input.dim() != 3 || outputs.size() < 2 || !outputs[1].defined()) return cost;
    int64_t batch = input.size(0), time = input.size(1), channels = input.size(2);
    int64_t keys = outputs[1].size(2), head_width = outputs[1].size(3);
    cost.macs = 2 * batch * time * keys * channels;
    int64_t scores = batch * (channels / head_width) * time * keys;  // softmax: one per score
    cost.flops = 2 * cost.macs + scores;
  } else if (type == "LayerNorm") {
    // Mean, variance, normalise (3), then the affine scale and shift (2).
    cost.flops = numel_of(outputs, 0) * (own_parameter(module, "weight").defined() ? 5 : 4);
  } else if (type == "GPT2MLP") {
    // GELU over the c_fc output: output elements x intermediate / model width.
    for (auto& [name, weight] : module.named_parameters(/*recurse=*/true)) {
      if (name == "c_fc.weight")  // Conv1D: [in, out]
        cost.flops = numel_of(outputs, 0) / weight.size(0) * weight.size(1);
    }
  } else if (type == "GPT2Block") {
    cost.flops = 2 * numel_of(outputs, 0);  // x + attention, x + MLP
  }
  return cost;
}

}  // namespace zt::observe
