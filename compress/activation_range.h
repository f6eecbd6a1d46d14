// The static range of activation quantization (range_calibration "static", DeepSpeed's
// QuantAct): one min/max for the whole input of a module, kept as a moving average over the
// training forwards, so that inference quantizes every token on one fixed grid.
#pragma once

#include <span>

namespace zt::compress {

class ActivationRange {
 public:
  static constexpr double kMomentum = 0.95;

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
