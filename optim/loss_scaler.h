// Loss scaling for fp16 training, with the rules of the ds_config `fp16` block: a static scale
// (loss_scale > 0) never changes; a dynamic one starts at 2^initial_scale_power, halves (not
// below min_loss_scale) when a step overflows and `hysteresis` overflows have used up their
// delay, and doubles after every loss_scale_window steps without an overflow.
// Invariant: the scaler's state depends only on the sequence of overflow flags it was given,
// so ranks that agree on every flag agree on the scale.
#pragma once

#include <cstdint>
#include <string>

namespace zt::optim {

struct LossScalerOptions {
  double static_scale = 0.0;  // > 0: this scale forever; 0: dynamic
  int initial_scale_power = 16;
  int64_t scale_window = 1000;          // clean steps between doublings
  int hysteresis = 2;                   // overflows tolerated before the scale drops
  bool consecutive_hysteresis = false;  // a clean step restores the whole hysteresis
  double min_scale = 1.0;
  double scale_factor = 2.0;
};

// The state that a checkpoint must keep to resume a dynamic scaler exactly.
struct LossScalerState {
  double scale = 1.0;
  int64_t iteration = 0;  // update() calls so far
  int64_t last_overflow_iteration = -1;
  int hysteresis_left = 1;
};

class LossScaler {
 public:
  explicit LossScaler(const LossScalerOptions& options);

  double scale() const { return state_.scale; }
  bool dynamic() const { return options_.static_scale <= 0.0; }
  const LossScalerOptions& options() const { return options_; }
  const LossScalerState& state() const { return state_; }
  void set_state(const LossScalerState& state) { state_ = state; }

  // Takes the overflow flag of one step (the step is skipped by the caller when it is true)
  // and moves the scale. Returns the line to log for an overflow (empty otherwise): the scale
  // the step attempted and the scale that replaces it, or the hysteresis that absorbed it.
  // Throws std::runtime_error when a dynamic scale already at min_loss_scale overflows: the
  // run can no longer make progress.
  std::string update(bool overflow);

 private:
  LossScalerOptions options_;
  LossScalerState state_;
};

}  // namespace zt::optim
