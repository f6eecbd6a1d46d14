// The replicated layers that run on a rank's own tokens under sequence parallelism
// (sequence_parallel.h): LayerNorm, RMSNorm and the position table. Their parameters and
// names are nn::LayerNorm's, nn::RMSNorm's and nn::Embedding's; each rank's gradient covers
// only its T/tp tokens, so the parameters enter the computation through copy_to_tp_region,
// whose backward sums the gradient over the tensor group (Megatron all-reduces these
// "sequence-parallel" gradients after backward; here it is part of the graph), and the
// replicas stay equal.
#pragma once

#include <memory>
#include <optional>

#include "comm/communicator.h"
#include "nn/module.h"

namespace zt::tensor_parallel {

class SequenceParallelLayerNorm final : public nn::Module {
 public:
  SequenceParallelLayerNorm(int64_t features, double eps, comm::Communicator& group);
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override;
  Tensor weight;  // ones [features]
  Tensor bias;    // zeros [features]

 protected:
  Tensor forward(const Tensor& chunk) override;

 private:
  int64_t features_;
  double eps_;
  comm::Communicator* group_;
};

class SequenceParallelRMSNorm final : public nn::Module {
 public:
  SequenceParallelRMSNorm(int64_t features, std::optional<double> eps, comm::Communicator& group);
  std::string type_name() const override { return "RMSNorm"; }
  std::string extra_repr() const override;
  Tensor weight;  // ones [features]

 protected:
  Tensor forward(const Tensor& chunk) override;

 private:
  int64_t features_;
  std::optional<double> eps_;
  comm::Communicator* group_;
};

// wpe: rows of this rank's positions [r T/tp, (r+1) T/tp) of a sequence of T.
class SequenceParallelPositionEmbedding final : public nn::Module {
 public:
  SequenceParallelPositionEmbedding(int64_t positions, int64_t features, comm::Communicator& group,
                                    double init_std);
  std::string type_name() const override { return "Embedding"; }
  std::string extra_repr() const override;
  Tensor weight;  // [positions, features]

 protected:
  // i64 [B, T] token ids (only T is read) -> [T/tp, features].
  Tensor forward(const Tensor& idx) override;

 private:
  comm::Communicator* group_;
};

// The norm of a tensor-parallel layer: nn::LayerNorm / nn::RMSNorm in the plain form, the
// sequence-parallel one above with sequence_parallel.
std::shared_ptr<nn::Module> make_layer_norm(int64_t features, double eps, comm::Communicator& group,
                                            bool sequence_parallel);
std::shared_ptr<nn::Module> make_rms_norm(int64_t features, std::optional<double> eps,
                                          comm::Communicator& group, bool sequence_parallel);

}  // namespace zt::tensor_parallel
