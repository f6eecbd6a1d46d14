// Vocabulary-parallel embedding and cross entropy: the token masks are built on the host from
// the ids (tokens are small next to the model), the arithmetic runs on the tensors' device.
#include "tensor_parallel/vocab_parallel.h"

#include <fmt/format.h>

#include <stdexcept>
#include <vector>

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "nn/init.h"
#include "tensor_parallel/sequence_parallel.h"
#include "tensor_parallel/tp_region.h"

namespace zt::tensor_parallel {

namespace {

std::vector<int64_t> host_ids(const Tensor& ids, const char* caller) {
  if (!ids.defined() || ids.dtype() != DType::i64) {
    throw std::invalid_argument(fmt::format("{}: token ids must be i64", caller));
  }
  Tensor host = ids.to(Device::cpu()).contiguous();
  const int64_t* data = host.data_ptr<int64_t>();
  return std::vector<int64_t>(data, data + host.numel());
}

}  // namespace

VocabRange vocab_range(int64_t vocab_size, int rank, int ranks) {
  if (vocab_size <= 0 || vocab_size % ranks != 0) {
    throw std::invalid_argument(
        fmt::format("tensor parallelism: the vocabulary of {} tokens is not divisible by the "
                    "tensor-parallel size {}",
                    vocab_size, ranks));
  }
  const int64_t per_rank = vocab_size / ranks;
  return {rank * per_rank, (rank + 1) * per_rank};
}

VocabParallelEmbedding::VocabParallelEmbedding(int64_t vocab_size, int64_t embedding_dim,
                                               comm::Communicator& group, double init_std,
                                               bool sequence_parallel)
    : vocab_size_(vocab_size),
      embedding_dim_(embedding_dim),
      group_(&group),
      range_(vocab_range(vocab_size, group.rank(), group.size())),
      sequence_parallel_(sequence_parallel) {
  MemoryTagGuard as_param(MemoryTag::param);
  Tensor full = empty({vocab_size, embedding_dim});
  nn::init::normal_(full, 0.0, init_std);
  weight = register_parameter("weight",
                              full.narrow(0, range_.begin, range_.end - range_.begin).contiguous());
}

std::string VocabParallelEmbedding::extra_repr() const {
  return fmt::format("{}, {}, tp={}, rows [{}, {})", vocab_size_, embedding_dim_, group_->size(),
                     range_.begin, range_.end);
}

Tensor VocabParallelEmbedding::forward(const Tensor& indices) {
  std::vector<int64_t> ids = host_ids(indices, "VocabParallelEmbedding");
  std::vector<int64_t> local(ids.size());
  std::vector<double> inside(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size_) {
      throw std::out_of_range(
          fmt::format("VocabParallelEmbedding: token {} is outside [0, {})", ids[i], vocab_size_));
    }
    const bool mine = ids[i] >= range_.begin && ids[i] < range_.end;
    local[i] = mine ? ids[i] - range_.begin : 0;
    inside[i] = mine ? 1.0 : 0.0;
  }
  Shape mask_shape = indices.sizes();
  mask_shape.push_back(1);
  const TensorOptions on = options_of(weight);
  Tensor rows = embedding(weight, from_int64(local, indices.sizes()).to(weight.device()));
  Tensor mask = from_values(inside, mask_shape).to(on.dtype).to(weight.device());
  return sequence_parallel_ ? reduce_scatter_to_sequence_parallel_region(rows * mask, *group_)
                            : reduce_from_tp_region(rows * mask, *group_);
}

Tensor vocab_parallel_cross_entropy(const Tensor& logits, const Tensor& targets,
                                    comm::Communicator& group) {
  if (logits.dim() != 2 || targets.dim() != 1 || targets.size(0) != logits.size(0)) {
    throw std::invalid_argument(fmt::format(
        "vocab_parallel_cross_entropy: expected logits [N, V/tp] and targets [N], got {} and {}",
        shape_str(logits.sizes()), shape_str(targets.sizes())));
  }
  const int64_t rows = logits.size(0), width = logits.size(1);
  const VocabRange range = vocab_range(width * group.size(), group.rank(), group.size());
  std::vector<int64_t> ids = host_ids(targets, "vocab_parallel_cross_entropy");
  std::vector<double> one_hot(size_t(rows * width), 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t id = ids[size_t(i)];
    if (id < 0 || id >= width * group.size()) {
      throw std::out_of_range(fmt::format(
          "vocab_parallel_cross_entropy: target {} is outside [0, {})", id, width * group.size()));
    }
    if (id >= range.begin && id < range.end) one_hot[size_t(i * width + id - range.begin)] = 1.0;
  }
  // The row max shifts the exponentials into range; the loss does not depend on it, so it
  // carries no gradient.
  Tensor row_max = amax(logits.detach(), {1}, true).contiguous();
  group.all_reduce(row_max, comm::ReduceOperation::max);
  Tensor shifted = logits - row_max;
  Tensor sum_exp = reduce_from_tp_region(sum(exp(shifted), {1}), group);
  Tensor target_mask = from_values(one_hot, {rows, width}).to(logits.dtype()).to(logits.device());
  Tensor target_logit = reduce_from_tp_region(sum(shifted * target_mask, {1}), group);
  return mean(log(sum_exp) - target_logit);
}

}  // namespace zt::tensor_parallel
