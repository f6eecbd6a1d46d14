// CPU implementations of the update rules, parallel over fixed chunks (elementwise, so the
// thread count never changes a bit of the result).
#include "optim/update_rules.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "core/parallel.h"

namespace zt::optim {

namespace {
constexpr int64_t kUpdateGrain = 1 << 15;

void check_lengths(const char* rule, size_t expected, std::initializer_list<size_t> lengths) {
  for (size_t length : lengths) {
    if (length != expected) {
      throw std::invalid_argument(std::string(rule) + ": spans of unequal length (" +
                                  std::to_string(expected) + " vs " + std::to_string(length) + ")");
    }
  }
}
}  // namespace

void sgd_update(std::span<float> params, std::span<const float> grads,
                std::span<float> momentum_buffer, const SgdHyper& hyper, bool first_step) {
  bool use_momentum = hyper.momentum != 0.0;
  check_lengths("sgd_update", params.size(),
                use_momentum ? std::initializer_list<size_t>{grads.size(), momentum_buffer.size()}
                             : std::initializer_list<size_t>{grads.size()});
  const float lr = float(hyper.lr);
  const float weight_decay = float(hyper.weight_decay);
  const float momentum = float(hyper.momentum);
  const float grad_scale = float(1.0 - hyper.dampening);
  parallel_for(0, int64_t(params.size()), kUpdateGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float grad = grads[size_t(i)];
      if (weight_decay != 0.0f) grad += weight_decay * params[size_t(i)];
      if (use_momentum) {
        float& buffer = momentum_buffer[size_t(i)];
        buffer = first_step ? grad : momentum * buffer + grad_scale * grad;
        grad = hyper.nesterov ? grad + momentum * buffer : buffer;
      }
      params[size_t(i)] -= lr * grad;
    }
  });
}

void adam_update(std::span<float> params, std::span<const float> grads, std::span<float> exp_avg,
                 std::span<float> exp_avg_sq, const AdamHyper& hyper) {
  check_lengths("adam_update", params.size(), {grads.size(), exp_avg.size(), exp_avg_sq.size()});
  if (hyper.step < 1) throw std::invalid_argument("adam_update: step must be >= 1");
  double correction1 =
      hyper.bias_correction ? 1.0 - std::pow(hyper.beta1, double(hyper.step)) : 1.0;
  double correction2 =
      hyper.bias_correction ? 1.0 - std::pow(hyper.beta2, double(hyper.step)) : 1.0;
  const float step_size = float(hyper.lr / correction1);
  const float inverse_sqrt_correction2 = float(1.0 / std::sqrt(correction2));
  const float beta1 = float(hyper.beta1);
  const float beta2 = float(hyper.beta2);
  const float eps = float(hyper.eps);
  const float l2_decay = hyper.decoupled_weight_decay ? 0.0f : float(hyper.weight_decay);
  // Decoupled decay shrinks the weight before the Adam step: p *= 1 - lr * wd.
  const float decay_factor =
      hyper.decoupled_weight_decay ? float(1.0 - hyper.lr * hyper.weight_decay) : 1.0f;
  parallel_for(0, int64_t(params.size()), kUpdateGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      size_t k = size_t(i);
      float grad = grads[k] + l2_decay * params[k];
      float m = beta1 * exp_avg[k] + (1.0f - beta1) * grad;
      float v = beta2 * exp_avg_sq[k] + (1.0f - beta2) * grad * grad;
      exp_avg[k] = m;
      exp_avg_sq[k] = v;
      float denominator = std::sqrt(v) * inverse_sqrt_correction2 + eps;
      params[k] = params[k] * decay_factor - step_size * m / denominator;
    }
  });
}

}  // namespace zt::optim
