// The dynamic loss scale's rules (see loss_scaler.h).
#include "optim/loss_scaler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace zt::optim {

LossScaler::LossScaler(const LossScalerOptions& options) : options_(options) {
  if (options_.scale_window < 1 || options_.hysteresis < 1 || !(options_.min_scale > 0.0) ||
      !(options_.scale_factor > 1.0) || options_.static_scale < 0.0) {
    throw std::invalid_argument(fmt::format(
        "LossScaler: expected scale_window >= 1, hysteresis >= 1, min_scale > 0, scale_factor > "
        "1 and static_scale >= 0; got {}, {}, {}, {}, {}",
        options_.scale_window, options_.hysteresis, options_.min_scale, options_.scale_factor,
        options_.static_scale));
  }
  state_.scale = dynamic() ? std::ldexp(1.0, options_.initial_scale_power) : options_.static_scale;
  state_.hysteresis_left = options_.hysteresis;
}

std::string LossScaler::update(bool overflow) {
  std::string message;
  if (!dynamic()) {
    if (overflow)
      message = fmt::format("OVERFLOW! Skipping step. Loss scale {:g} (static)", scale());
    state_.iteration += 1;
    return message;
  }
  if (overflow) {
    if (options_.hysteresis == 1 || state_.hysteresis_left == 1) {
      if (state_.scale == options_.min_scale) {
        throw std::runtime_error(fmt::format(
            "fp16 loss scale: overflow with the scale already at min_loss_scale {:g}; cannot "
            "lower it further",
            options_.min_scale));
      }
      double next = std::max(state_.scale / options_.scale_factor, options_.min_scale);
      message = fmt::format("OVERFLOW! Skipping step. Attempted loss scale: {:g}, reducing to {:g}",
                            state_.scale, next);
      state_.scale = next;
    } else {
      message = fmt::format(
          "OVERFLOW! Skipping step. Attempted loss scale: {:g}, but hysteresis is {}. Reducing "
          "hysteresis to {}",
          state_.scale, state_.hysteresis_left, state_.hysteresis_left - 1);
      state_.hysteresis_left -= 1;
    }
    state_.last_overflow_iteration = state_.iteration;
  } else {
    if (options_.consecutive_hysteresis) state_.hysteresis_left = options_.hysteresis;
    if ((state_.iteration - state_.last_overflow_iteration) % options_.scale_window == 0) {
      if (!options_.consecutive_hysteresis) state_.hysteresis_left = options_.hysteresis;
      state_.scale *= options_.scale_factor;
    }
  }
  state_.iteration += 1;
  return message;
}

}  // namespace zt::optim
