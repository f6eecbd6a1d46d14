// Finding the per-tensor-rank generators of a model (tensor_rank_generator.h).
#include "tensor_parallel/tensor_rank_generator.h"

#include <fmt/format.h>

#include <stdexcept>

namespace zt::tensor_parallel {

uint64_t attention_dropout_seed(uint64_t dropout_seed, int64_t layer, int tensor_rank) {
  if (layer < 0)
    throw std::invalid_argument(
        fmt::format("attention_dropout_seed: the layer index must be >= 0, got {}", layer));
  if (tensor_rank < 0 || uint64_t(tensor_rank) >= kLayerSeedStride)
    throw std::invalid_argument(
        fmt::format("attention_dropout_seed: the tensor rank must be in [0, {}), got {}",
                    kLayerSeedStride, tensor_rank));
  return dropout_seed + kTensorRankSeedOffset + uint64_t(layer) * kLayerSeedStride +
         uint64_t(tensor_rank);
}

std::map<std::string, Generator*> tensor_rank_generators(nn::Module& model) {
  std::map<std::string, Generator*> generators;
  for (const auto& [name, module] : model.named_modules())
    if (auto* owner = dynamic_cast<TensorRankGeneratorOwner*>(module.get()))
      generators[name] = &owner->tensor_rank_generator();
  return generators;
}

}  // namespace zt::tensor_parallel
