// Megatron's two parallel linear layers, y = x W + b with W stored [in, out] as GPT-2's Conv1D,
// or [out, in] as nn::Linear (Llama's projections) with weight_out_in, so that shards are plain
// blocks of Hugging Face's matrices (below, "columns" are output features in either layout):
// - ColumnParallelLinear: rank r holds the columns of output block r, W [in, out/tp] and b
//   [out/tp]; its input enters through copy_to_tp_region, its output is this rank's columns
//   (or all of them with gather_output). `fused_blocks` > 1 treats the output as that many
//   equal blocks side by side (GPT-2's q, k, v) and gives rank r its piece of each, so every
//   rank computes whole heads of each.
// - RowParallelLinear: rank r holds rows block r, W [in/tp, out], and the whole bias [out]
//   (replicated); partial products are summed by reduce_from_tp_region before the bias.
// A column layer followed by a row layer costs one all-reduce forward and one backward.
// With sequence_parallel (sequence_parallel.h) the column layer's input is this rank's tokens
// [B, T/tp, in], all-gathered along the sequence, and the row layer reduce-scatters its sum
// along the sequence to [B, T/tp, out] and adds the bias there (its gradient summed over the
// group): the same bytes as the all-reduce, and the activations between stay split.
// Initialisation draws the whole matrix from the default generator and keeps this rank's block
// (Megatron's CPU initialisation), so every tp size starts from the weights of the unsplit
// layer with the same seed.
#pragma once

#include "comm/communicator.h"
#include "nn/module.h"

namespace zt::tensor_parallel {

// Columns of `full` [in, out] that rank `rank` of `ranks` holds, with `fused_blocks` blocks.
Tensor column_shard(const Tensor& full, int64_t fused_blocks, int rank, int ranks);
// Rows of `full` [in, out] (or elements of a 1-d tensor) of block `rank` of `ranks`.
Tensor row_shard(const Tensor& full, int rank, int ranks);

class ColumnParallelLinear final : public nn::Module {
 public:
  struct Options {
    bool bias = true;
    bool gather_output = false;
    int64_t fused_blocks = 1;
    double init_std = 0.02;
    bool weight_out_in = false;  // W [out / tp, in]
    bool sequence_parallel = false;
    // The caller passed the input through the region operator itself (copy_to_tp_region, or
    // gather_from_sequence_parallel_region), once for several column layers reading the same
    // input (Llama's q, k, v): one collective instead of one per layer.
    bool input_in_region = false;
  };
  ColumnParallelLinear(int64_t in_features, int64_t out_features, comm::Communicator& group,
                       const Options& options);
  std::string type_name() const override { return "ColumnParallelLinear"; }
  std::string extra_repr() const override;
  int64_t fused_blocks() const { return options_.fused_blocks; }
  bool weight_out_in() const { return options_.weight_out_in; }
  Tensor weight;  // [in, out / tp], or [out / tp, in]
  Tensor bias;    // [out / tp]; undefined without bias

 protected:
  Tensor forward(const Tensor& input) override;

 private:
  int64_t in_features_, out_features_;
  comm::Communicator* group_;
  Options options_;
};

class RowParallelLinear final : public nn::Module {
 public:
  struct Options {
    bool bias = true;
    bool input_is_parallel = true;  // false: the whole input arrives and is scattered here
    double init_std = 0.02;
    bool weight_out_in = false;  // W [out, in / tp]
    bool sequence_parallel = false;
  };
  RowParallelLinear(int64_t in_features, int64_t out_features, comm::Communicator& group,
                    const Options& options);
  std::string type_name() const override { return "RowParallelLinear"; }
  std::string extra_repr() const override;
  bool weight_out_in() const { return options_.weight_out_in; }
  Tensor weight;  // [in / tp, out], or [out, in / tp]
  Tensor bias;    // [out], the same on every rank; undefined without bias

 protected:
  Tensor forward(const Tensor& input) override;

 private:
  int64_t in_features_, out_features_;
  comm::Communicator* group_;
  Options options_;
};

}  // namespace zt::tensor_parallel
