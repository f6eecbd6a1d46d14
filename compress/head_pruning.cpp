// Head masks as reshapes: [in] -> [H, in / H] on the input dim, so a [H] mask broadcasts.
#include "compress/head_pruning.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "dist/config.h"
#include "models/llama_block.h"

namespace zt::compress {

int input_dim_of(const std::string& module_type) {
  return module_type == "Conv1D" ? 0 : 1;
}

Tensor mask_heads(const Tensor& weight, const Tensor& head_mask, int input_dim) {
  const int64_t heads = head_mask.numel();
  if (input_dim == 0) {  // [in, out]
    const Tensor grouped = weight.reshape({heads, weight.numel() / heads});
    return mul(grouped, head_mask.reshape({heads, 1})).reshape(weight.sizes());
  }
  const int64_t out = weight.size(0), in = weight.size(1);  // [out, in]
  const Tensor grouped = weight.reshape({out, heads, in / heads});
  return mul(grouped, head_mask.reshape({1, heads, 1})).reshape(weight.sizes());
}

std::vector<float> feature_mask_of_heads(const std::vector<float>& head_mask, int64_t features,
                                         int64_t inner, const std::string& module) {
  const int64_t heads = int64_t(head_mask.size());
  if (heads == 0 || inner % heads != 0 || features % inner != 0) {
    throw std::invalid_argument(fmt::format(
        "head pruning: {} has {} features, expected a multiple of the {} features of {} heads",
        module, features, inner, heads));
  }
  const int64_t head_size = inner / heads;
  std::vector<float> mask(static_cast<size_t>(features));
  for (int64_t j = 0; j < features; ++j) mask[size_t(j)] = head_mask[size_t(j % inner / head_size)];
  return mask;
}

void check_grouped_heads(nn::Module& model, int64_t num_heads,
                         const std::vector<std::string>& head_pruned) {
  for (auto& [name, module] : model.named_modules()) {
    auto* attention = dynamic_cast<models::LlamaAttention*>(module.get());
    if (attention == nullptr) continue;
    for (const std::string& pruned : head_pruned) {
      if (!pruned.starts_with(name + ".") || num_heads == attention->kv_heads()) continue;
      throw dist::ConfigError(fmt::format(
          "compression_training.head_pruning.shared_parameters.num_heads: {} has {} key/value "
          "heads of {} query heads each; Llama's heads are pruned by whole groups, so "
          "num_heads must be {}, got {}",
          name, attention->kv_heads(), attention->heads() / attention->kv_heads(),
          attention->kv_heads(), num_heads));
    }
  }
}

}  // namespace zt::compress
