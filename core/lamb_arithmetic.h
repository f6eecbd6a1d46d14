// The arithmetic of one element of DeepSpeed's fused LAMB update, written once for every backend
// as a template over an arithmetic type A (core/optimizer_arithmetic.h explains the pattern).
// LAMB runs in two passes because its trust ratio needs two norms of the whole parameter: pass 1
// advances the moments and yields the element's weight and update (whose squares the backend
// sums per tensor); pass 2, once the caller has the norms (summed across ranks where a
// parameter is partitioned), recomputes the update from the new moments and applies it with the
// parameter's scale lr * sqrt(1 - beta2^t) / (1 - beta1^t) * trust_ratio.
#pragma once

#include "core/host_device.h"

namespace zt {

// The constants of one LAMB pass, the same for every step (bias correction is in the scale).
struct LambStepConstants {
  float beta1 = 0.9f;
  float one_minus_beta1 = 0.1f;
  float beta2 = 0.999f;
  float one_minus_beta2 = 0.001f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;     // L2 of the weight added to the update (LAMB's decay)
  bool eps_inside_sqrt = false;  // sqrt(v + eps) instead of sqrt(v) + eps
};

// update = m / denom + weight_decay * w, from the moments already advanced.
template <typename A>
ZT_HOST_DEVICE inline typename A::Value lamb_direction(typename A::Value param,
                                                       typename A::Value exp_avg,
                                                       typename A::Value exp_avg_sq,
                                                       const LambStepConstants& k) {
  using V = typename A::Value;
  const V denominator = k.eps_inside_sqrt ? A::sqrt(A::add(exp_avg_sq, A::splat(k.eps)))
                                          : A::add(A::sqrt(exp_avg_sq), A::splat(k.eps));
  return A::add(A::div(exp_avg, denominator), A::mul(A::splat(k.weight_decay), param));
}

// Pass 1: m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2; returns the direction,
// whose square the caller adds to the update's norm (the weight's is param^2, read before).
template <typename A>
ZT_HOST_DEVICE inline typename A::Value lamb_moments_element(typename A::Value param,
                                                             typename A::Value grad,
                                                             typename A::Value& exp_avg,
                                                             typename A::Value& exp_avg_sq,
                                                             const LambStepConstants& k) {
  exp_avg = A::add(A::mul(A::splat(k.beta1), exp_avg), A::mul(A::splat(k.one_minus_beta1), grad));
  exp_avg_sq = A::add(A::mul(A::splat(k.beta2), exp_avg_sq),
                      A::mul(A::mul(A::splat(k.one_minus_beta2), grad), grad));
  return lamb_direction<A>(param, exp_avg, exp_avg_sq, k);
}

// Pass 2: param -= scale * direction, scale = the parameter's step size times its trust ratio.
template <typename A>
ZT_HOST_DEVICE inline void lamb_apply_element(typename A::Value& param, typename A::Value exp_avg,
                                              typename A::Value exp_avg_sq, float scale,
                                              const LambStepConstants& k) {
  param = A::sub(param, A::mul(A::splat(scale), lamb_direction<A>(param, exp_avg, exp_avg_sq, k)));
}

}  // namespace zt
