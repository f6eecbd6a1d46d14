// Megatron's sequence parallelism: between the tensor-parallel layers the hidden states
// [B, T, ...] are split along the sequence (dim 1) over the tensor group, rank r holding
// tokens [r T/tp, (r+1) T/tp), so that the norms and the residual dropout run on 1/tp of the
// tokens and keep 1/tp of their activations. The two conjugate operators replace the
// all-reduces of the plain form (the same bytes: a reduce-scatter plus an all-gather of B
// bytes move what an all-reduce of B moves):
//   gather_from_sequence_parallel_region:      forward all-gather (dim 1), backward reduce-scatter
//   reduce_scatter_to_sequence_parallel_region: forward reduce-scatter (dim 1), backward all-gather
// A column-parallel layer reads its input through the first, a row-parallel one sums its
// partial products through the second. Parameters applied to a rank's own tokens only (norms,
// row-parallel biases, position embeddings) get a partial gradient on each rank: they are used
// through copy_to_tp_region (tp_region.h), whose backward all-reduces it over the group.
// Invariants as in tp_region.h (same order of calls on every rank); T divisible by tp.
#pragma once

#include "comm/communicator.h"
#include "core/tensor.h"

namespace zt::tensor_parallel {

// Throws std::invalid_argument naming both when tp does not divide the sequence length.
void check_sequence_parallel_length(int64_t sequence_length, int tensor_parallel_size);
// This rank's first token and token count of a sequence of `sequence_length`.
struct SequenceChunk {
  int64_t begin = 0, length = 0;
};
SequenceChunk sequence_chunk(int64_t sequence_length, comm::Communicator& group);

Tensor gather_from_sequence_parallel_region(const Tensor& x, comm::Communicator& group);
Tensor reduce_scatter_to_sequence_parallel_region(const Tensor& x, comm::Communicator& group);

// Dropout of this rank's chunk [B, T/tp, ...] of hidden states [B, T, ...] with the mask that
// dropout of the whole tensor would draw from the default generator: rank r draws the counters
// of its own tokens, and the generator advances by the whole tensor's count on every rank. The
// run therefore drops what the plain tensor-parallel run (and one process) drops.
Tensor sequence_parallel_dropout(const Tensor& chunk, double p, bool training,
                                 comm::Communicator& group);

}  // namespace zt::tensor_parallel
