// A tensor-parallel model's state against the unsplit model's: which parameters are shards
// (and how each is cut), slicing a whole state dict into this rank's shards, and gathering the
// shards back into the whole one. Used to build a tensor-parallel model from a trained full
// model (tests, loading a checkpoint at another tp) and to save or compare whole weights.
// Shards by module type: ColumnParallelLinear weight and bias (columns, per fused block),
// RowParallelLinear weight (rows), VocabParallelEmbedding weight (vocabulary rows); every other
// parameter (norms, positions, row-parallel biases) is replicated. A tied parameter (the head
// reading wte's shard) has a layout under each of its names.
#pragma once

#include <map>
#include <set>
#include <string>

#include "comm/communicator.h"
#include "nn/module.h"

namespace zt::tensor_parallel {

enum class ShardKind { replicated, columns, rows };

struct ShardLayout {
  ShardKind kind = ShardKind::replicated;
  int64_t fused_blocks = 1;  // columns only
};

// Each parameter's layout, by each of its names.
std::map<std::string, ShardLayout> shard_layouts(nn::Module& model);
// The names of the parameters that are shards (differ between tensor ranks): what the engine
// sums across the tensor group for the gradient norm.
std::set<std::string> sharded_parameter_names(nn::Module& model);

// Rank `rank`'s piece of the whole tensor `full` cut by `layout` (`full` itself when
// replicated). Throws std::invalid_argument when the cut dimension does not divide by `ranks`.
Tensor cut_shard(const Tensor& full, const ShardLayout& layout, int rank, int ranks);
// The inverse: the whole tensor from some of the `ranks` pieces cut by `layout`, by rank, each
// in its place (every block of a fused column layout); the places of the ranks not given hold
// zeros, so a piece cut from the result is exact only where the given ranks cover it. A
// replicated tensor is any of the pieces.
Tensor join_shards(const std::map<int, Tensor>& pieces, const ShardLayout& layout, int ranks);

// Copies this rank's piece of each whole tensor of `full` (the unsplit model's state, same
// names) into `model`'s parameters. Throws std::invalid_argument naming a missing tensor or a
// shape that does not cut into the parameter's.
void load_full_state(nn::Module& model, const NamedTensors& full, int rank, int ranks);
// `shards` (named as the model's parameters: its own, its gradients, or an engine's
// consolidated state) made whole on every rank of `group`, in host memory, in their order.
// Collective over `group`; throws std::invalid_argument naming a tensor the model lacks.
NamedTensors gather_full(nn::Module& model, const NamedTensors& shards, comm::Communicator& group);
// Every parameter whole (gather_full of the parameters).
NamedTensors gather_full_state(nn::Module& model, comm::Communicator& group);
// The same for the parameters' gradients (zeros where a parameter has none). Collective.
NamedTensors gather_full_gradients(nn::Module& model, comm::Communicator& group);

}  // namespace zt::tensor_parallel
