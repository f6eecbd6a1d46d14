// The column- and row-parallel linear layers: shards cut from a whole initial matrix, and the
// forward as linear() between the region operators.
#include "tensor_parallel/parallel_linear.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "nn/init.h"
#include "tensor_parallel/sequence_parallel.h"
#include "tensor_parallel/tp_region.h"

namespace zt::tensor_parallel {

namespace {

void check_divisible(const char* layer, const char* what, int64_t size, int64_t parts) {
  if (size <= 0 || size % parts != 0) {
    throw std::invalid_argument(fmt::format(
        "{}: {} {} is not divisible by the tensor-parallel size {}", layer, what, size, parts));
  }
}

Tensor drawn_matrix(int64_t in_features, int64_t out_features, double init_std) {
  Tensor full = empty({in_features, out_features});
  nn::init::normal_(full, 0.0, init_std);
  return full;
}

void check_input(const char* layer, const Tensor& input, int64_t width) {
  if (input.dim() < 1 || input.size(-1) != width) {
    throw std::invalid_argument(fmt::format("{}: input of shape {} needs a last dim of {}", layer,
                                            shape_str(input.sizes()), width));
  }
}

}  // namespace

Tensor column_shard(const Tensor& full, int64_t fused_blocks, int rank, int ranks) {
  const int64_t out = full.size(-1), block = out / fused_blocks, piece = block / ranks;
  check_divisible("column_shard", "an output block of", block, ranks);
  std::vector<Tensor> pieces;
  for (int64_t b = 0; b < fused_blocks; ++b)
    pieces.push_back(full.narrow(full.dim() - 1, b * block + rank * piece, piece));
  return cat(pieces, full.dim() - 1).contiguous();
}

Tensor row_shard(const Tensor& full, int rank, int ranks) {
  const int64_t rows = full.size(0);
  check_divisible("row_shard", "the row count", rows, ranks);
  return full.narrow(0, rank * (rows / ranks), rows / ranks).contiguous();
}

ColumnParallelLinear::ColumnParallelLinear(int64_t in_features, int64_t out_features,
                                           comm::Communicator& group, const Options& options)
    : in_features_(in_features), out_features_(out_features), group_(&group), options_(options) {
  check_divisible("ColumnParallelLinear", "out_features", out_features,
                  options.fused_blocks * group.size());
  if (options.gather_output && options.fused_blocks != 1) {
    throw std::invalid_argument(
        "ColumnParallelLinear: gather_output needs fused_blocks 1 (fused outputs stay split)");
  }
  MemoryTagGuard as_param(MemoryTag::param);
  weight = register_parameter(
      "weight", options.weight_out_in
                    ? row_shard(drawn_matrix(out_features, in_features, options.init_std),
                                group.rank(), group.size())
                    : column_shard(drawn_matrix(in_features, out_features, options.init_std),
                                   options.fused_blocks, group.rank(), group.size()));
  if (options.bias) bias = register_parameter("bias", zeros({out_features / group.size()}));
}

std::string ColumnParallelLinear::extra_repr() const {
  return fmt::format("nx={}, nf={}, tp={}, bias={}, gather_output={}{}", in_features_,
                     out_features_, group_->size(), bias.defined(), options_.gather_output,
                     options_.sequence_parallel ? ", sequence_parallel" : "");
}

Tensor ColumnParallelLinear::forward(const Tensor& input) {
  check_input("ColumnParallelLinear", input, in_features_);
  const Tensor whole_input = options_.input_in_region ? input
                             : options_.sequence_parallel
                                 ? gather_from_sequence_parallel_region(input, *group_)
                                 : copy_to_tp_region(input, *group_);
  Tensor local = linear(whole_input, options_.weight_out_in ? weight : weight.t(), bias);
  return options_.gather_output ? gather_from_tp_region(local, *group_) : local;
}

RowParallelLinear::RowParallelLinear(int64_t in_features, int64_t out_features,
                                     comm::Communicator& group, const Options& options)
    : in_features_(in_features), out_features_(out_features), group_(&group), options_(options) {
  check_divisible("RowParallelLinear", "in_features", in_features, group.size());
  MemoryTagGuard as_param(MemoryTag::param);
  weight = register_parameter(
      "weight", options.weight_out_in
                    ? column_shard(drawn_matrix(out_features, in_features, options.init_std), 1,
                                   group.rank(), group.size())
                    : row_shard(drawn_matrix(in_features, out_features, options.init_std),
                                group.rank(), group.size()));
  if (options.bias) bias = register_parameter("bias", zeros({out_features}));
}

std::string RowParallelLinear::extra_repr() const {
  return fmt::format("nx={}, nf={}, tp={}, bias={}, input_is_parallel={}{}", in_features_,
                     out_features_, group_->size(), bias.defined(), options_.input_is_parallel,
                     options_.sequence_parallel ? ", sequence_parallel" : "");
}

Tensor RowParallelLinear::forward(const Tensor& input) {
  const Tensor local_input =
      options_.input_is_parallel ? input : scatter_to_tp_region(input, *group_);
  check_input("RowParallelLinear", local_input, in_features_ / group_->size());
  const Tensor partial = linear(local_input, options_.weight_out_in ? weight : weight.t());
  if (!options_.sequence_parallel) {
    Tensor summed = reduce_from_tp_region(partial, *group_);
    return bias.defined() ? summed + bias : summed;
  }
  // This rank's tokens only: the bias's gradient is summed over the group.
  Tensor chunk = reduce_scatter_to_sequence_parallel_region(partial, *group_);
  return bias.defined() ? chunk + copy_to_tp_region(bias, *group_) : chunk;
}

}  // namespace zt::tensor_parallel
