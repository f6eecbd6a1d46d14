// The arithmetic of one element of the fused Adam/AdamW and SGD updates, written once for every
// backend: each function is a template over an arithmetic type A that names the IEEE operations
// (add, sub, mul, div, sqrt, fma, each correctly rounded, and splat for a constant), so the CPU's
// scalar, AVX2 and AVX-512 paths and the CUDA kernel apply the same operations in the same order
// and agree bit for bit. The order is PyTorch's (torch.optim's single-tensor CPU kernels and its
// CUDA kernels: lerp, addcmul, addcdiv and add with alpha, each a fused multiply-add where
// PyTorch's vectorised code has one), so that an update from identical inputs gives PyTorch's
// bits in nearly every element, and the few that differ do so in both directions (its sqrt on
// large CPU tensors is not always correctly rounded). A rounding order that is off by a little in
// one direction moves every element the same way, and such a bias adds up across a layer.
#pragma once

#include <cstdint>

#include "core/host_device.h"

namespace zt {

// The per-step constants of one Adam/AdamW update, each computed in double from the
// hyperparameters and rounded to f32 once (optim/update_rules.cpp), as PyTorch passes Python
// floats to its f32 kernels.
struct AdamStepConstants {
  float l2_decay = 0.0f;      // torch.optim.Adam's L2 term, added to the gradient; 0: none
  float decay_factor = 1.0f;  // 1 - lr * weight_decay with decoupled decay (AdamW); 1: none
  // exp_avg.lerp_(grad, w), w = 1 - beta1: lerp(m, g, w) = m + w * (g - m) when |w| < 0.5, else
  // g - (1 - w) * (g - m), each one fused multiply-add. moment1_weight is w or w - 1.
  float moment1_weight = 0.0f;
  bool moment1_from_grad = false;  // |w| >= 0.5: the second form
  float beta2 = 0.0f;
  float one_minus_beta2 = 0.0f;
  float sqrt_correction2 = 1.0f;  // sqrt(1 - beta2^step), or 1 without bias correction
  float eps = 0.0f;
  float step_size = 0.0f;  // lr / (1 - beta1^step), or lr
};

// The per-step constants of one SGD update (torch.optim.SGD's semantics).
struct SgdStepConstants {
  float lr = 0.0f;
  float weight_decay = 0.0f;  // L2, added to the gradient
  float momentum = 0.0f;
  float grad_scale = 1.0f;  // 1 - dampening
  bool use_momentum = false;
  bool nesterov = false;
  bool first_step = false;  // the momentum buffer starts as the gradient
};

// torch.optim.Adam/AdamW's step on one element (or one vector of lanes: A::Value). Each line
// is one of PyTorch's tensor operations; the branches depend on the constants only, so every
// lane takes the same one.
template <typename A>
ZT_HOST_DEVICE inline void adam_element(typename A::Value& param, typename A::Value grad,
                                        typename A::Value& exp_avg, typename A::Value& exp_avg_sq,
                                        const AdamStepConstants& k) {
  using V = typename A::Value;
  // grad = grad.add(param, alpha=weight_decay): fma(weight_decay, param, grad).
  if (k.l2_decay != 0.0f) grad = A::fma(A::splat(k.l2_decay), param, grad);
  // param.mul_(1 - lr * weight_decay).
  if (k.decay_factor != 1.0f) param = A::mul(param, A::splat(k.decay_factor));
  // exp_avg.lerp_(grad, 1 - beta1).
  const V toward_grad = A::sub(grad, exp_avg);
  exp_avg = A::fma(A::splat(k.moment1_weight), toward_grad, k.moment1_from_grad ? grad : exp_avg);
  // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2): (value * grad) * grad + self,
  // the last multiply and the add fused.
  exp_avg_sq = A::fma(A::mul(A::splat(k.one_minus_beta2), grad), grad,
                      A::mul(exp_avg_sq, A::splat(k.beta2)));
  // denom = (exp_avg_sq.sqrt() / sqrt(bias_correction2)).add_(eps). The quotient by the step's
  // constant is A::div, or A::div_by_constant where A has a faster way to the same correctly
  // rounded quotient (the AVX-512 path: core/cpu/cpu_optimizer_avx512.cpp).
  const V root = A::sqrt(exp_avg_sq);
  V corrected_root;
  if constexpr (requires { A::div_by_constant(root, k.sqrt_correction2); })
    corrected_root = A::div_by_constant(root, k.sqrt_correction2);
  else
    corrected_root = A::div(root, A::splat(k.sqrt_correction2));
  const V denominator = A::add(corrected_root, A::splat(k.eps));
  // param.addcdiv_(exp_avg, denom, value=-step_size): param + (-step_size * exp_avg) / denom,
  // which rounds as param - (step_size * exp_avg) / denom (negation is exact).
  param = A::sub(param, A::div(A::mul(A::splat(k.step_size), exp_avg), denominator));
}

// torch.optim.SGD's step on one element. `buffer` is read and written only with momentum.
template <typename A>
ZT_HOST_DEVICE inline void sgd_element(typename A::Value& param, typename A::Value grad,
                                       typename A::Value& buffer, const SgdStepConstants& k) {
  // grad = grad.add(param, alpha=weight_decay).
  if (k.weight_decay != 0.0f) grad = A::fma(A::splat(k.weight_decay), param, grad);
  if (k.use_momentum) {
    // buf = grad.clone() on the first step, else buf.mul_(momentum).add_(grad, alpha=1 -
    // dampening): fma(1 - dampening, grad, buf * momentum).
    buffer = k.first_step
                 ? grad
                 : A::fma(A::splat(k.grad_scale), grad, A::mul(buffer, A::splat(k.momentum)));
    // grad = grad.add(buf, alpha=momentum) with Nesterov, else buf.
    grad = k.nesterov ? A::fma(A::splat(k.momentum), buffer, grad) : buffer;
  }
  // param.add_(grad, alpha=-lr).
  param = A::fma(A::splat(-k.lr), grad, param);
}

}  // namespace zt
