// 0/1 Adam (DeepSpeed's ZeroOneAdam). Until var_freeze_step the variance is updated only on
// steps whose gradient the engine all-reduced in full precision, at intervals that double
// every var_update_scaler such updates; the other steps average the gradient with the
// compressed all-reduce and update only the momentum. After var_freeze_step the ranks take
// local steps without communicating, and every local_step_interval steps (doubling every
// local_step_scaler steps, up to local_step_clipper) they undo their local moves, average the
// accumulated move (scaled by sqrt(v) + eps) compressed, rebuild the momentum from it and
// apply it. DeepSpeed's first step only sets up; so does this one.
#pragma once

#include <vector>

#include "optim/onebit_optimizer.h"

namespace zt::optim {

struct ZeroOneAdamOptions {
  OneBitOptions base;
  int64_t var_freeze_step = 100000;
  int64_t var_update_scaler = 16;
  int64_t local_step_scaler = 32678;
  int64_t local_step_clipper = 16;
};

class ZeroOneAdam final : public CompressedCommunicationOptimizer {
 public:
  ZeroOneAdam(std::vector<ParamGroup> groups, comm::Communicator& data_parallel,
              ZeroOneAdamOptions options = {});
  void step() override;
  std::string name() const override { return "ZeroOneAdam"; }
  void set_momentum(double beta1) override { options_.base.beta1 = beta1; }
  double momentum() const override { return options_.base.beta1; }
  bool gradients_stay_local() const override { return !allreduce_next_; }
  // Each piece's gradient, and after var_freeze_step its accumulated move, is compressed with its
  // own scale, as each parameter's in DeepSpeed.
  void set_pieces(size_t group, size_t index, std::vector<NormSegment> pieces) override;
  ParamState param_state(size_t group, size_t index) const override;
  void set_param_state(size_t group, size_t index, const ParamState& state) override;

 private:
  struct State {
    Tensor exp_avg, exp_avg_sq, accumulated_move;
    int64_t step = 0;
    double lr_sum = 0.0;  // DeepSpeed's lrs: the learning rates of the local steps since a sync
    PieceCompressions compression;  // of the gradient, then of the accumulated move
  };
  // One parameter's step (number state.step) after the set-up step.
  void step_param(const ParamGroup& group, const Tensor& param, const Tensor& grad, State& state);
  // The synchronisation of local steps: the averaged move replaces the local ones.
  void synchronise(const Tensor& param, State& state);
  // The schedules' counters after a step numbered `step`.
  void advance_schedules(int64_t step);

  ZeroOneAdamOptions options_;
  bool initialized_ = false;
  bool frozen_ = false;         // past var_freeze_step: local steps
  bool allreduce_next_ = true;  // the next backward's gradient is all-reduced in full
  int64_t var_interval_ = 1, var_counter_ = 0;
  int64_t local_step_interval_ = 1, local_step_counter_ = 0;
  std::vector<std::vector<State>> states_;
};

}  // namespace zt::optim
