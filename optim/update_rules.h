// Update rules written over flat spans of fp32: one implementation of the mathematics that the
// plain optimizers apply tensor by tensor and the ZeRO engine applies to the one flat shard it
// owns. Invariant: element i of the result depends only on element i of the inputs and the
// hyperparameters, so any partition of a flat buffer updates to the same bits.
#pragma once

#include <cstdint>
#include <span>

namespace zt::optim {

struct SgdHyper {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // L2: added to the gradient
  bool nesterov = false;
};

// PyTorch's SGD. momentum_buffer is ignored when momentum == 0; on the first step
// (first_step == true) the buffer is set to the gradient, as PyTorch does.
void sgd_update(std::span<float> params, std::span<const float> grads,
                std::span<float> momentum_buffer, const SgdHyper& hyper, bool first_step);

struct AdamHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  // true: decoupled weight decay (AdamW, and DeepSpeed's "Adam" by default);
  // false: L2 added to the gradient (torch.optim.Adam).
  bool decoupled_weight_decay = true;
  bool bias_correction = true;
  int64_t step = 1;  // 1-based count of this update, for bias correction
};

void adam_update(std::span<float> params, std::span<const float> grads, std::span<float> exp_avg,
                 std::span<float> exp_avg_sq, const AdamHyper& hyper);

}  // namespace zt::optim
