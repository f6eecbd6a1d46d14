// Random streams that live inside tensor-parallel modules: the attention-weight dropout of a
// rank's own heads draws from a generator seeded per tensor rank (Megatron's model-parallel RNG
// stream), not from the default generator. A checkpoint saves and restores each of them by
// the module's name in the whole model (dist/checkpoint_generators.h), so a resumed run draws
// the masks the uninterrupted run would have drawn.
// Each layer's attention has its own stream (one generator per layer, so equal seeds would
// give every layer the same masks): the seed depends on the layer's index in the whole model,
// so a pipeline stage of some layers seeds them as the whole model does.
// Invariant: the generators of one layer across a tensor group are seeded base + tensor rank
// (consecutive), and the layers' bases lie kLayerSeedStride apart (no two streams coincide
// for a tensor group of up to kLayerSeedStride ranks).
#pragma once

#include <map>
#include <string>

#include "core/generator.h"
#include "nn/module.h"

namespace zt::tensor_parallel {

// Megatron's offset of the model-parallel seed from the data-parallel one.
constexpr uint64_t kTensorRankSeedOffset = 2718;
constexpr uint64_t kLayerSeedStride = uint64_t(1) << 16;

// The seed of the attention-dropout generator of layer `layer` (its index in the whole model)
// on tensor rank `tensor_rank`: dropout_seed + 2718 + layer * kLayerSeedStride + tensor_rank.
// Throws std::invalid_argument naming the value when the layer is negative or the rank is
// outside [0, kLayerSeedStride).
uint64_t attention_dropout_seed(uint64_t dropout_seed, int64_t layer, int tensor_rank);

// A module that owns a generator seeded per tensor rank.
class TensorRankGeneratorOwner {
 public:
  virtual ~TensorRankGeneratorOwner() = default;
  virtual Generator& tensor_rank_generator() = 0;
};

// Every such generator in `model`, by its module's dotted name there.
std::map<std::string, Generator*> tensor_rank_generators(nn::Module& model);

}  // namespace zt::tensor_parallel
