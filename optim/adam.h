// Adam and AdamW. DeepSpeed's "Adam" type decouples weight decay by default (adam_w_mode
// true), unlike torch.optim.Adam; `decoupled_weight_decay` chooses. Bias correction as in both.
#pragma once

#include "optim/optimizer.h"
#include "optim/update_rules.h"

namespace zt::optim {

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  bool decoupled_weight_decay = true;
  bool bias_correction = true;
};

class Adam final : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
  void step() override;
  std::string name() const override { return options_.decoupled_weight_decay ? "AdamW" : "Adam"; }
  void set_momentum(double beta1) override { options_.beta1 = beta1; }
  double momentum() const override { return options_.beta1; }
  const AdamOptions& options() const { return options_; }

  struct State {
    Tensor exp_avg;
    Tensor exp_avg_sq;
    int64_t step = 0;
  };
  const State& state(size_t group, size_t index) const { return states_[group][index]; }
  // The state of parameter `index` of group `group` for an update applied outside step() (the
  // ZeRO offload engine's one-pass host step), made where the parameter is when missing. The
  // caller applies update number `step + 1` with these hyperparameters and then counts it.
  State& state_for_update(size_t group, size_t index);
  ParamState param_state(size_t group, size_t index) const override;
  void set_param_state(size_t group, size_t index, const ParamState& state) override;

 private:
  AdamOptions options_;
  std::vector<std::vector<State>> states_;  // [group][param]
};

}  // namespace zt::optim
