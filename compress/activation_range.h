// The static range of activation quantization (range_calibration "static", DeepSpeed's
// QuantAct): one min/max for the whole input of a module, kept as a moving average over the
// training forwards, so that inference quantizes every token on one fixed grid. The compressor
// keeps the two bounds in a buffer of the module (kActivationRangeName, [lowest, highest]), as
// QuantAct's x_min_max, so checkpoints and state dicts carry the range.
#pragma once

#include <span>

namespace zt::compress {

inline constexpr const char* kActivationRangeName = "activation_range";

class ActivationRange {
 public:
  static constexpr double kMomentum = 0.95;

  ActivationRange() = default;
  // A range as saved (lowest == highest: not calibrated yet).
  ActivationRange(float lowest, float highest) : lowest_(lowest), highest_(highest) {}

  // A training forward's input: while the range is empty (lowest == highest, as before the
  // first observation) it becomes the input's min/max; then each bound moves to
  // kMomentum * bound + (1 - kMomentum) * observed.
  void observe(std::span<const float> values);
  bool calibrated() const { return lowest_ != highest_; }
  float lowest() const { return lowest_; }
  float highest() const { return highest_; }

 private:
  float lowest_ = 0.0f, highest_ = 0.0f;
};

}  // namespace zt::compress
