// Plainly written references for one element of the fused Adam and SGD updates, in PyTorch's
// order of operations (torch.optim's single-tensor kernels on a CPU with FMA, and on CUDA), for
// the tests that hold every path of every backend to the same bits. Each +, -, *, / and sqrt is
// computed in double and rounded once to f32, which is exactly the correctly rounded f32 result
// (double has more than 2 * 24 + 2 bits), and each fused multiply-add is C's fmaf, so this
// reference depends neither on the kernels' code nor on the compiler's contraction settings.
#pragma once

#include <cmath>

#include "core/optimizer_arithmetic.h"

namespace zt::testing {

inline float rounded(double exact_enough) {
  return float(exact_enough);
}

inline void reference_adam_element(float& param, float grad, float& exp_avg, float& exp_avg_sq,
                                   const AdamStepConstants& k) {
  if (k.l2_decay != 0.0f) grad = std::fmaf(k.l2_decay, param, grad);
  if (k.decay_factor != 1.0f) param = rounded(double(param) * double(k.decay_factor));
  // lerp(exp_avg, grad, w): exp_avg + w * (grad - exp_avg), or grad + (w - 1) * (grad - exp_avg).
  const float toward_grad = rounded(double(grad) - double(exp_avg));
  exp_avg = std::fmaf(k.moment1_weight, toward_grad, k.moment1_from_grad ? grad : exp_avg);
  const float scaled_grad = rounded(double(k.one_minus_beta2) * double(grad));
  exp_avg_sq = std::fmaf(scaled_grad, grad, rounded(double(exp_avg_sq) * double(k.beta2)));
  const float root = rounded(std::sqrt(double(exp_avg_sq)));
  const float denominator =
      rounded(double(rounded(double(root) / double(k.sqrt_correction2))) + double(k.eps));
  const float step =
      rounded(double(rounded(double(k.step_size) * double(exp_avg))) / double(denominator));
  param = rounded(double(param) - double(step));
}

inline void reference_sgd_element(float& param, float grad, float& buffer,
                                  const SgdStepConstants& k) {
  if (k.weight_decay != 0.0f) grad = std::fmaf(k.weight_decay, param, grad);
  if (k.use_momentum) {
    buffer = k.first_step
                 ? grad
                 : std::fmaf(k.grad_scale, grad, rounded(double(buffer) * double(k.momentum)));
    grad = k.nesterov ? std::fmaf(k.momentum, buffer, grad) : buffer;
  }
  param = std::fmaf(-k.lr, grad, param);
}

}  // namespace zt::testing
