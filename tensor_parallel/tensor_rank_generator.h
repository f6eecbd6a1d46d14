// Random streams that live inside tensor-parallel modules: the attention-weight dropout of a
// rank's own heads draws from a generator seeded per tensor rank (Megatron's model-parallel RNG
// stream), not from the default generator. A checkpoint saves and restores each of them by
// the module's name in the whole model (dist/checkpoint_generators.h), so a resumed run draws
// the masks the uninterrupted run would have drawn.
// Invariant: the generators of one tensor group are seeded base + tensor rank (consecutive).
#pragma once

#include <map>
#include <string>

#include "core/generator.h"
#include "nn/module.h"

namespace zt::tensor_parallel {

// A module that owns a generator seeded per tensor rank.
class TensorRankGeneratorOwner {
 public:
  virtual ~TensorRankGeneratorOwner() = default;
  virtual Generator& tensor_rank_generator() = 0;
};

// Every such generator in `model`, by its module's dotted name there.
std::map<std::string, Generator*> tensor_rank_generators(nn::Module& model);

}  // namespace zt::tensor_parallel
