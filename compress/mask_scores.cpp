// Scores are found by selecting modules exactly as the compressor does, so the two agree on
// which modules have them; the mask reuses the ranking of the l1 masks (pruning_masks.h).
#include "compress/mask_scores.h"

#include <cmath>
#include <cstring>
#include <string>
#include <string_view>

#include "autograd/functions.h"
#include "compress/activation_range.h"
#include "compress/head_pruning.h"
#include "compress/module_selection.h"
#include "compress/pruning_masks.h"
#include "core/factory.h"
#include "core/generator.h"
#include "nn/init.h"

namespace zt::compress {

namespace {

Tensor new_scores(const Shape& shape, const Tensor& like, Generator& generator) {
  Tensor scores = empty(shape);
  // kaiming_uniform_ with a = sqrt(5): bound 1 / sqrt(fan_in), fan_in the last dim's product.
  const int64_t fan_in = shape.size() == 1 ? shape[0] : scores.numel() / shape[0];
  const double bound = 1.0 / std::sqrt(double(fan_in));
  nn::init::uniform_(scores, -bound, bound, &generator);
  return scores.to(like.dtype()).to(like.device());
}

}  // namespace

bool is_mask_scores(const std::string& name) {
  for (const std::string_view scores :
       {kSparseScoresName, kHeadScoresName, kRowScoresName, kChannelScoresName}) {
    if (name.size() > scores.size() && name.ends_with(scores) &&
        name[name.size() - scores.size() - 1] == '.')
      return true;
  }
  return false;
}

bool is_compression_state(const std::string& name) {
  const std::string_view range = kActivationRangeName;
  return is_mask_scores(name) || (name.size() > range.size() && name.ends_with(range) &&
                                  name[name.size() - range.size() - 1] == '.');
}

Tensor own_parameter(nn::Module& module, const std::string& name) {
  for (const auto& [parameter_name, parameter] : module.named_parameters(false))
    if (parameter_name == name) return parameter;
  return Tensor();
}

int64_t add_mask_scores(nn::Module& model, const dist::CompressionConfig& config, uint64_t seed) {
  const std::vector<NamedModule> candidates = compressible_modules(model);
  Generator generator(seed);
  int64_t added = 0;
  auto add = [&](const NamedModule& selected, const char* name, const Shape& shape) {
    if (own_parameter(*selected.module, name).defined()) return;
    Tensor weight = own_parameter(*selected.module, "weight");
    nn::add_parameter(*selected.module, name, new_scores(shape, weight, generator));
    ++added;
  };
  if (config.sparse_pruning.enabled && config.sparse_pruning.method == "topk") {
    for (const dist::CompressionGroup& group : config.sparse_pruning.groups) {
      for (const Selection& selection :
           select_modules(candidates, group, config.sparse_pruning.excluded_modules)) {
        add(selection.target, kSparseScoresName,
            own_parameter(*selection.target.module, "weight").sizes());
      }
    }
  }
  if (config.head_pruning.enabled) {
    for (const dist::CompressionGroup& group : config.head_pruning.groups) {
      for (const Selection& selection : select_modules(candidates, group))
        add(selection.target, kHeadScoresName, {config.head_pruning.num_heads});
    }
  }
  for (const dist::StructuredPruningConfig* technique :
       {&config.row_pruning, &config.channel_pruning}) {
    if (!technique->enabled || technique->method != "topk") continue;
    for (const dist::CompressionGroup& group : technique->groups) {
      for (const Selection& selection : select_modules(candidates, group)) {
        const std::string type = selection.target.module->type_name();
        if (input_dim_of(type) == 0) continue;  // a Conv1D: the compressor refuses it
        const Shape& weight = own_parameter(*selection.target.module, "weight").sizes();
        Shape shape(weight.size(), 1);
        shape[0] = weight[0];
        add(selection.target, row_scores_name(type), shape);
      }
    }
  }
  return added;
}

const char* row_scores_name(const std::string& type) {
  return type == "Conv2d" ? kChannelScoresName : kRowScoresName;
}

std::vector<float> topk_mask(std::span<const float> scores, double dense_ratio) {
  return keep_largest_values(scores, kept_count(int64_t(scores.size()), dense_ratio));
}

Tensor topk_binarize(const Tensor& scores, double dense_ratio) {
  Tensor host = scores.detach().to(DType::f32).to(Device::cpu()).contiguous();
  std::vector<float> mask =
      topk_mask(std::span<const float>(host.data_ptr<float>(), size_t(host.numel())), dense_ratio);
  Tensor mask_tensor = empty(scores.sizes());
  std::memcpy(mask_tensor.data_ptr<float>(), mask.data(), mask.size() * sizeof(float));
  mask_tensor = mask_tensor.to(scores.dtype()).to(scores.device());
  // Straight through: forward exactly the mask (s - s is 0), backward the identity.
  return add(mask_tensor, sub(scores, scores.detach()));
}

}  // namespace zt::compress
