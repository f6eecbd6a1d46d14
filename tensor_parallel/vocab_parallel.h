// The vocabulary split across the tensor group: rank r holds token rows [r V/tp, (r+1) V/tp).
// - VocabParallelEmbedding: each rank looks up the tokens in its range (others give zero rows)
//   and reduce_from_tp_region sums the ranks' rows into the whole embedding; with
//   sequence_parallel the sum is reduce-scattered along the sequence instead, leaving this
//   rank's tokens [B, T/tp, D] (sequence_parallel.h).
// - vocab_parallel_cross_entropy: the loss from logits split over the vocabulary (the tied
//   head's output on each rank) without ever holding a row of all V logits on one rank: the
//   row max and the sum of exponentials are all-reduced (max, then sum), and so is the target's
//   logit, which only the rank holding the target contributes. Gradients flow through the
//   region operators: softmax minus one-hot on each rank's own columns.
// Invariants: V divisible by tp; every rank passes the same targets.
#pragma once

#include "comm/communicator.h"
#include "nn/module.h"

namespace zt::tensor_parallel {

struct VocabRange {
  int64_t begin = 0, end = 0;  // this rank's tokens
};
// Throws std::invalid_argument naming V and tp when tp does not divide V.
VocabRange vocab_range(int64_t vocab_size, int rank, int ranks);

class VocabParallelEmbedding final : public nn::Module {
 public:
  // Weight N(0, init_std), drawn whole and cut to this rank's rows.
  VocabParallelEmbedding(int64_t vocab_size, int64_t embedding_dim, comm::Communicator& group,
                         double init_std = 0.02, bool sequence_parallel = false);
  std::string type_name() const override { return "VocabParallelEmbedding"; }
  std::string extra_repr() const override;
  const VocabRange& range() const { return range_; }
  Tensor weight;  // [V / tp, embedding_dim]

 protected:
  Tensor forward(const Tensor& indices) override;

 private:
  int64_t vocab_size_, embedding_dim_;
  comm::Communicator* group_;
  VocabRange range_;
  bool sequence_parallel_;
};

// logits [N, V / tp] (this rank's vocabulary columns), targets i64 [N] of the whole
// vocabulary: the mean over N of -log softmax(whole row)[target], the same on every rank.
Tensor vocab_parallel_cross_entropy(const Tensor& logits, const Tensor& targets,
                                    comm::Communicator& group);

}  // namespace zt::tensor_parallel
