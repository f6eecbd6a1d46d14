// The element loops the compressed-communication optimizers share, over host f32 spans.
// Plain loops: these optimizers' cost is in communication, and each line is one of the
// tensor operations of DeepSpeed's Python step.
#pragma once

#include <cmath>
#include <cstdint>

namespace zt::optim::onebit {

// m = beta1 m + (1 - beta1) g
inline void update_momentum(float* exp_avg, const float* grad, int64_t count, float beta1) {
  for (int64_t i = 0; i < count; ++i) exp_avg[i] = beta1 * exp_avg[i] + (1.0f - beta1) * grad[i];
}
// v = beta2 v + (1 - beta2) g^2
inline void update_variance(float* exp_avg_sq, const float* grad, int64_t count, float beta2) {
  for (int64_t i = 0; i < count; ++i)
    exp_avg_sq[i] = beta2 * exp_avg_sq[i] + (1.0f - beta2) * grad[i] * grad[i];
}
// w -= lr (m / (sqrt(v) + eps) + weight_decay w); the applied step is added to `applied`
// (0/1 Adam's accumulator) when it is not null.
inline void apply_adam_update(float* param, const float* exp_avg, const float* exp_avg_sq,
                              int64_t count, float lr, float eps, float weight_decay,
                              float* applied) {
  for (int64_t i = 0; i < count; ++i) {
    float update = exp_avg[i] / (std::sqrt(exp_avg_sq[i]) + eps);
    if (weight_decay > 0.0f) update += weight_decay * param[i];
    param[i] -= lr * update;
    if (applied != nullptr) applied[i] -= lr * update;
  }
}

// Zeroes the averaged momentum of the elements whose variance is 0: no rank ever saw a gradient
// there (a padding element, a unit that never fired), yet the compression hands every element
// +-scale, and m / (sqrt(0) + eps) would move it by scale / eps. DeepSpeed leaves this to a
// user's exp_avg_mask; the variance already says where it is needed.
inline void mask_unseen(float* exp_avg, const float* exp_avg_sq, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    if (exp_avg_sq[i] == 0.0f) exp_avg[i] = 0.0f;
}

}  // namespace zt::optim::onebit
