// A frozen model partitioned as ZeRO stage 3 partitions a trained one, for forward passes only
// (a distillation teacher next to a stage-3 student): each rank keeps 1/N of every module's
// parameters, and the stage-3 gatherer brings a module's parameters in before its forward and
// drops them after. No gradient buffers, no optimizer, no master weights.
// Invariant: every rank runs the same forwards in the same order (each gather is a collective
// over `data_parallel`), as the engine's own stage-3 forward requires.
#pragma once

#include <cstdint>
#include <memory>

#include "comm/communicator.h"
#include "core/tensor.h"
#include "dist/config.h"
#include "dist/zero/flat_group_buffers.h"
#include "dist/zero/partition_plan.h"
#include "nn/module.h"

namespace zt::dist {

class ParameterGatherer;

class FrozenStage3Model {
 public:
  // Partitions `model`'s parameters over `data_parallel` with `zero`'s persistence thresholds
  // (rank 0's values on every rank). The model must be on one device with one floating dtype;
  // its parameters stop requiring gradients and it is put in evaluation mode. `zero` and
  // `data_parallel` must outlive this object.
  FrozenStage3Model(std::shared_ptr<nn::Module> model, const ZeroConfig& zero,
                    comm::Communicator& data_parallel);
  ~FrozenStage3Model();
  FrozenStage3Model(const FrozenStage3Model&) = delete;
  FrozenStage3Model& operator=(const FrozenStage3Model&) = delete;

  // The model's outputs for `input`, without a graph; collective over the ranks.
  Tensor forward(const Tensor& input);
  nn::Module& module() { return *model_; }
  // Parameter elements this rank keeps between forwards: its slices, and the groups the
  // persistence threshold keeps whole.
  int64_t resident_parameter_numel() const;
  // All parameter elements of the model (the unpartitioned size).
  int64_t total_parameter_numel() const { return plan_.total_numel(); }

 private:
  std::shared_ptr<nn::Module> model_;
  PartitionPlan plan_;
  FlatGroupList groups_;  // before gatherer_, which holds indices into it
  std::unique_ptr<ParameterGatherer> gatherer_;
  bool first_forward_done_ = false;
};

}  // namespace zt::dist
