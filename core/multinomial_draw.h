// The draws of one row of multinomial, shared by the CPU and CUDA kernels so that both pick the
// same categories from the same Philox stream: draw s takes the f64 uniform u of element
// first_draw + s and picks the first category whose running sum of weights exceeds u * total,
// where total sums the weights still in play. Without replacement a picked category's weight
// is set to 0, so it cannot be picked again, and the total is summed afresh (not decremented,
// which would let rounding drift).
#pragma once

#include <cstdint>

#include "core/host_device.h"
#include "core/philox.h"

namespace zt {

// weights: the row's `categories` non-negative f64 weights (overwritten without replacement);
// out: num_samples category indices.
ZT_HOST_DEVICE inline void multinomial_row(double* weights, int64_t categories, int64_t num_samples,
                                           bool replacement, uint64_t seed, uint64_t offset,
                                           uint64_t first_draw, int64_t* out) {
  double total = 0.0;
  for (int64_t c = 0; c < categories; ++c) total += weights[c];
  for (int64_t s = 0; s < num_samples; ++s) {
    philox::Block block = philox::block_for(seed, offset, first_draw + uint64_t(s));
    double target = philox::uniform_53bit(block.word[0], block.word[1]) * total;
    double running = 0.0;
    int64_t pick = -1, last_positive = -1;
    for (int64_t c = 0; c < categories; ++c) {
      if (!(weights[c] > 0.0)) continue;
      last_positive = c;
      running += weights[c];
      if (running > target) {
        pick = c;
        break;
      }
    }
    // Rounding can leave the running sum at or below target at the end: take the last
    // category that can be drawn.
    if (pick < 0) pick = last_positive;
    out[s] = pick;
    if (!replacement) {
      weights[pick] = 0.0;
      total = 0.0;
      for (int64_t c = 0; c < categories; ++c) total += weights[c];
    }
  }
}

}  // namespace zt
