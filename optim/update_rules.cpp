// The update rules over host spans: the hyperparameters become the f32 per-step constants of
// the fused update (computed here once, for every backend, each rounded once from double), and
// the CPU kernels of core/host_optimizer_kernels.h apply them, in parallel over fixed chunks.
#include "optim/update_rules.h"

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/host_optimizer_kernels.h"

namespace zt::optim {

namespace {

void check_lengths(const char* rule, size_t expected, std::initializer_list<size_t> lengths) {
  for (size_t length : lengths) {
    if (length != expected) {
      throw std::invalid_argument(std::string(rule) + ": spans of unequal length (" +
                                  std::to_string(expected) + " vs " + std::to_string(length) + ")");
    }
  }
}

}  // namespace

SgdStepConstants sgd_step_constants(const SgdHyper& hyper, bool first_step) {
  SgdStepConstants constants;
  constants.lr = float(hyper.lr);
  constants.weight_decay = float(hyper.weight_decay);
  constants.momentum = float(hyper.momentum);
  constants.grad_scale = float(1.0 - hyper.dampening);
  constants.use_momentum = hyper.momentum != 0.0;
  constants.nesterov = hyper.nesterov;
  constants.first_step = first_step;
  return constants;
}

void sgd_update(std::span<float> params, std::span<const float> grads,
                std::span<float> momentum_buffer, const SgdHyper& hyper, bool first_step) {
  SgdStepConstants constants = sgd_step_constants(hyper, first_step);
  check_lengths("sgd_update", params.size(),
                constants.use_momentum
                    ? std::initializer_list<size_t>{grads.size(), momentum_buffer.size()}
                    : std::initializer_list<size_t>{grads.size()});
  cpu::SgdRange range{params.data(), grads.data(),
                      constants.use_momentum ? momentum_buffer.data() : nullptr,
                      int64_t(params.size())};
  cpu::sgd_update_ranges({&range, 1}, constants);
}

AdamStepConstants adam_step_constants(const AdamHyper& hyper) {
  if (hyper.step < 1) throw std::invalid_argument("adam_update: step must be >= 1");
  // Each constant is computed in double from the exact hyperparameters and rounded to f32 once,
  // as PyTorch's Python floats are when they reach its f32 kernels: 1 - float(0.999) would be
  // 1.3e-5 low and bias every update the same way (tests/optim/test_adam_against_torch.cpp).
  const double step = double(hyper.step);
  const double correction1 = hyper.bias_correction ? 1.0 - std::pow(hyper.beta1, step) : 1.0;
  const double correction2 = hyper.bias_correction ? 1.0 - std::pow(hyper.beta2, step) : 1.0;
  AdamStepConstants constants;
  const float lerp_weight = float(1.0 - hyper.beta1);
  constants.moment1_from_grad = std::abs(lerp_weight) >= 0.5f;
  // w - 1 in f32 is exact for w in [0.5, 1] (Sterbenz), as in PyTorch's lerp.
  constants.moment1_weight = constants.moment1_from_grad ? lerp_weight - 1.0f : lerp_weight;
  constants.beta2 = float(hyper.beta2);
  constants.one_minus_beta2 = float(1.0 - hyper.beta2);
  // PyTorch takes bias_correction2 ** 0.5 in Python, which is C's pow.
  constants.sqrt_correction2 = float(std::pow(correction2, 0.5));
  constants.eps = float(hyper.eps);
  constants.step_size = float(hyper.lr / correction1);
  constants.l2_decay = hyper.decoupled_weight_decay ? 0.0f : float(hyper.weight_decay);
  // Decoupled decay shrinks the weight before the Adam step: p *= 1 - lr * wd.
  constants.decay_factor =
      hyper.decoupled_weight_decay ? float(1.0 - hyper.lr * hyper.weight_decay) : 1.0f;
  return constants;
}

void adam_update(std::span<float> params, std::span<const float> grads, std::span<float> exp_avg,
                 std::span<float> exp_avg_sq, const AdamHyper& hyper) {
  check_lengths("adam_update", params.size(), {grads.size(), exp_avg.size(), exp_avg_sq.size()});
  AdamStepConstants constants = adam_step_constants(hyper);
  cpu::AdamRange range{params.data(), grads.data(), exp_avg.data(), exp_avg_sq.data(),
                       int64_t(params.size())};
  cpu::adam_update_ranges({&range, 1}, constants);
}

}  // namespace zt::optim
