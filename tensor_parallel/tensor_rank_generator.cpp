// Finding the per-tensor-rank generators of a model (tensor_rank_generator.h).
#include "tensor_parallel/tensor_rank_generator.h"

namespace zt::tensor_parallel {

std::map<std::string, Generator*> tensor_rank_generators(nn::Module& model) {
  std::map<std::string, Generator*> generators;
  for (const auto& [name, module] : model.named_modules())
    if (auto* owner = dynamic_cast<TensorRankGeneratorOwner*>(module.get()))
      generators[name] = &owner->tensor_rank_generator();
  return generators;
}

}  // namespace zt::tensor_parallel
