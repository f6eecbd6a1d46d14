// 1-bit Adam (DeepSpeed's OneBitAdam): freeze_step steps of Adam on the all-reduced gradient
// (the first step only counts and leaves the moments at 0, as DeepSpeed's does), then the variance
// is frozen and each step updates the momentum from the rank's own gradient and averages it over
// the ranks with the compressed all-reduce (error feedback on both sides). The update is
// m / (sqrt(v) + eps) + weight_decay * w without bias correction, as DeepSpeed's.
#pragma once

#include <vector>

#include "optim/onebit_optimizer.h"

namespace zt::optim {

class OneBitAdam final : public CompressedCommunicationOptimizer {
 public:
  OneBitAdam(std::vector<ParamGroup> groups, comm::Communicator& data_parallel,
             OneBitOptions options = {});
  void step() override;
  std::string name() const override { return "OneBitAdam"; }
  void set_momentum(double beta1) override { options_.beta1 = beta1; }
  double momentum() const override { return options_.beta1; }
  bool gradients_stay_local() const override { return frozen_; }
  // Each piece's momentum is compressed with its own scale, as each parameter's in DeepSpeed.
  void set_pieces(size_t group, size_t index, std::vector<NormSegment> pieces) override;
  ParamState param_state(size_t group, size_t index) const override;
  void set_param_state(size_t group, size_t index, const ParamState& state) override;

 private:
  struct State {
    Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
    PieceCompressions compression;  // of the momentum
  };
  OneBitOptions options_;
  bool initialized_ = false;  // DeepSpeed's first step only counts
  bool frozen_ = false;       // past freeze_step: compressed momentum, frozen variance
  std::vector<std::vector<State>> states_;
};

}  // namespace zt::optim
