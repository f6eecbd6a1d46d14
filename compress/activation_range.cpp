// The moving average of the static activation range. The first observation is taken whole
// (DeepSpeed re-initialises whenever the two bounds are equal, which is also the empty state).
#include "compress/activation_range.h"

#include <algorithm>

namespace zt::compress {

void ActivationRange::observe(std::span<const float> values) {
  if (values.empty()) return;
  auto [lowest, highest] = std::minmax_element(values.begin(), values.end());
  if (lowest_ == highest_) {
    lowest_ = *lowest;
    highest_ = *highest;
    return;
  }
  lowest_ = float(kMomentum * lowest_ + (1.0 - kMomentum) * *lowest);
  highest_ = float(kMomentum * highest_ + (1.0 - kMomentum) * *highest);
}

}  // namespace zt::compress
