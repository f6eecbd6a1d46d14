// The sequence-parallel operators: the collectives along dim 1 of [B, T, ...] (a permutation
// puts the rank's token block outermost, where the communicator's slices are), each recording
// its conjugate as the backward, and the dropout of a rank's chunk with the whole tensor's mask.
#include "tensor_parallel/sequence_parallel.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/nn.h"

namespace zt::tensor_parallel {

namespace {

void check_hidden(const char* op, const Tensor& x) {
  if (!x.defined() || x.dim() < 2) {
    throw std::invalid_argument(fmt::format("{}: expected hidden states [batch, time, ...], got {}",
                                            op, x.defined() ? shape_str(x.sizes()) : "None"));
  }
}

// [ranks, B, t, ...] <-> [B, ranks * t, ...]: the orders that move dim 0 behind dim 1 and back.
Shape ranks_after_batch(int64_t dims) {
  Shape order{1, 0};
  for (int64_t dim = 2; dim < dims; ++dim) order.push_back(dim);
  return order;
}

Tensor all_gathered_sequence(const Tensor& chunk, comm::Communicator& group) {
  const int ranks = group.size();
  Tensor input = chunk.is_contiguous() ? chunk : chunk.contiguous();
  Shape gathered_shape = chunk.sizes();
  gathered_shape.insert(gathered_shape.begin(), int64_t(ranks));
  Tensor gathered = empty(gathered_shape, options_of(chunk));
  group.all_gather(input, gathered);
  Shape whole = chunk.sizes();
  whole[1] *= ranks;
  return gathered.permute(ranks_after_batch(int64_t(gathered_shape.size())))
      .contiguous()
      .reshape(whole);
}

Tensor reduce_scattered_sequence(const Tensor& whole, comm::Communicator& group) {
  const int ranks = group.size();
  check_sequence_parallel_length(whole.size(1), ranks);
  Shape split = whole.sizes();
  split[1] /= ranks;
  split.insert(split.begin() + 1, int64_t(ranks));  // [B, ranks, t, ...]
  Tensor slices =
      whole.reshape(split).permute(ranks_after_batch(int64_t(split.size()))).contiguous();
  Shape chunk_shape = whole.sizes();
  chunk_shape[1] /= ranks;
  Tensor chunk = empty(chunk_shape, options_of(whole));
  group.reduce_scatter(slices, chunk);
  return chunk;
}

}  // namespace

void check_sequence_parallel_length(int64_t sequence_length, int tensor_parallel_size) {
  if (tensor_parallel_size < 1 || sequence_length % tensor_parallel_size != 0) {
    throw std::invalid_argument(fmt::format(
        "sequence parallelism: the sequence length {} is not divisible by the tensor-parallel "
        "size {}",
        sequence_length, tensor_parallel_size));
  }
}

SequenceChunk sequence_chunk(int64_t sequence_length, comm::Communicator& group) {
  check_sequence_parallel_length(sequence_length, group.size());
  const int64_t length = sequence_length / group.size();
  return {group.rank() * length, length};
}

Tensor gather_from_sequence_parallel_region(const Tensor& x, comm::Communicator& group) {
  check_hidden("gather_from_sequence_parallel_region", x);
  if (group.size() == 1) return x;
  Tensor gathered;
  {
    autograd::NoGradGuard no_grad;
    gathered = all_gathered_sequence(x.detach(), group);
  }
  comm::Communicator* on = &group;
  return autograd::record("GatherFromSequenceParallelRegion", {x}, gathered,
                          [on](const Tensor& grad) -> std::vector<Tensor> {
                            return {reduce_scattered_sequence(grad, *on)};
                          });
}

Tensor reduce_scatter_to_sequence_parallel_region(const Tensor& x, comm::Communicator& group) {
  check_hidden("reduce_scatter_to_sequence_parallel_region", x);
  if (group.size() == 1) return x;
  Tensor chunk;
  {
    autograd::NoGradGuard no_grad;
    chunk = reduce_scattered_sequence(x.detach(), group);
  }
  comm::Communicator* on = &group;
  return autograd::record("ReduceScatterToSequenceParallelRegion", {x}, chunk,
                          [on](const Tensor& grad) -> std::vector<Tensor> {
                            return {all_gathered_sequence(grad, *on)};
                          });
}

Tensor sequence_parallel_dropout(const Tensor& chunk, double p, bool training,
                                 comm::Communicator& group) {
  if (!training || p == 0.0 || group.size() == 1) return dropout(chunk, p, training);
  if (!(p >= 0.0 && p < 1.0)) {
    throw std::invalid_argument(
        fmt::format("sequence_parallel_dropout: p must be in [0, 1), got {}", p));
  }
  check_hidden("sequence_parallel_dropout", chunk);
  // Element (b, t, i) of the whole [B, T, ...] draws counter offset + (b T + t) * inner + i;
  // the generator's counter is element-addressed, so each batch row of the chunk is one call.
  const int64_t batch = chunk.size(0), own = chunk.size(1), whole = own * group.size();
  const int64_t inner = chunk.numel() / (batch * own);
  Generator& source = default_generator();
  const uint64_t offset = source.reserve(uint64_t(batch * whole * inner));
  Tensor input = chunk.detach().contiguous();
  Tensor out = empty(input.sizes(), options_of(input));
  Tensor mask = empty(input.sizes(), options_of(input).with_dtype(DType::u8));
  Backend& backend = backend_for(input.device());
  for (int64_t b = 0; b < batch; ++b) {
    const uint64_t first = uint64_t((b * whole + group.rank() * own) * inner);
    backend.dropout_forward(input.select(0, b), out.select(0, b), mask.select(0, b), p,
                            source.seed(), offset + first);
  }
  return autograd::record("SequenceParallelDropoutBackward", {chunk}, out,
                          [mask, p](const Tensor& grad) -> std::vector<Tensor> {
                            return {ops::dropout_backward(grad, mask, p)};
                          });
}

}  // namespace zt::tensor_parallel
