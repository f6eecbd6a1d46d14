// The sequence-parallel norms and position table: the functional forms on a rank's tokens,
// with the parameters routed through copy_to_tp_region so that their gradients are summed.
#include "tensor_parallel/sequence_parallel_layers.h"

#include <fmt/format.h>

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "nn/init.h"
#include "nn/layer_norm.h"
#include "nn/rms_norm.h"
#include "tensor_parallel/sequence_parallel.h"
#include "tensor_parallel/tp_region.h"

namespace zt::tensor_parallel {

SequenceParallelLayerNorm::SequenceParallelLayerNorm(int64_t features, double eps,
                                                     comm::Communicator& group)
    : features_(features), eps_(eps), group_(&group) {
  MemoryTagGuard as_param(MemoryTag::param);
  weight = register_parameter("weight", ones({features}));
  bias = register_parameter("bias", zeros({features}));
}

std::string SequenceParallelLayerNorm::extra_repr() const {
  return fmt::format("({},), eps={}, sequence_parallel tp={}", features_, eps_, group_->size());
}

Tensor SequenceParallelLayerNorm::forward(const Tensor& chunk) {
  return layer_norm(chunk, {features_}, copy_to_tp_region(weight, *group_),
                    copy_to_tp_region(bias, *group_), eps_);
}

SequenceParallelRMSNorm::SequenceParallelRMSNorm(int64_t features, std::optional<double> eps,
                                                 comm::Communicator& group)
    : features_(features), eps_(eps), group_(&group) {
  MemoryTagGuard as_param(MemoryTag::param);
  weight = register_parameter("weight", ones({features}));
}

std::string SequenceParallelRMSNorm::extra_repr() const {
  return fmt::format("({},), eps={}, sequence_parallel tp={}", features_,
                     eps_.has_value() ? fmt::format("{}", *eps_) : "None", group_->size());
}

Tensor SequenceParallelRMSNorm::forward(const Tensor& chunk) {
  return rms_norm(chunk, {features_}, copy_to_tp_region(weight, *group_), eps_);
}

SequenceParallelPositionEmbedding::SequenceParallelPositionEmbedding(int64_t positions,
                                                                     int64_t features,
                                                                     comm::Communicator& group,
                                                                     double init_std)
    : group_(&group) {
  MemoryTagGuard as_param(MemoryTag::param);
  weight = register_parameter("weight", empty({positions, features}));
  // nn::Embedding's N(0, 1) draw first, as the plain form's wpe makes it before redrawing, so
  // that every later parameter draws the same numbers with and without sequence parallelism.
  nn::init::normal_(weight, 0.0, 1.0);
  nn::init::normal_(weight, 0.0, init_std);
}

std::string SequenceParallelPositionEmbedding::extra_repr() const {
  return fmt::format("{}, {}, sequence_parallel tp={}", weight.size(0), weight.size(1),
                     group_->size());
}

Tensor SequenceParallelPositionEmbedding::forward(const Tensor& idx) {
  const SequenceChunk own = sequence_chunk(idx.size(1), *group_);
  const Tensor positions =
      arange(double(own.begin), double(own.begin + own.length), 1.0, options_of(idx));
  return embedding(copy_to_tp_region(weight, *group_), positions);
}

std::shared_ptr<nn::Module> make_layer_norm(int64_t features, double eps, comm::Communicator& group,
                                            bool sequence_parallel) {
  if (sequence_parallel) return std::make_shared<SequenceParallelLayerNorm>(features, eps, group);
  return std::make_shared<nn::LayerNorm>(Shape{features}, eps);
}

std::shared_ptr<nn::Module> make_rms_norm(int64_t features, std::optional<double> eps,
                                          comm::Communicator& group, bool sequence_parallel) {
  if (sequence_parallel) return std::make_shared<SequenceParallelRMSNorm>(features, eps, group);
  return std::make_shared<nn::RMSNorm>(Shape{features}, eps);
}

}  // namespace zt::tensor_parallel
