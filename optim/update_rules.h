// Update rules written over flat spans of fp32: one implementation of the mathematics that the
// plain optimizers apply tensor by tensor and the ZeRO engine applies to the one flat shard it
// owns. Invariant: element i of the result depends only on element i of the inputs and the
// hyperparameters, so any partition of a flat buffer updates to the same bits. The arithmetic
// itself is the backends' fused update (Backend::adam_update / sgd_update); these functions
// turn the hyperparameters into its f32 per-step constants and run the CPU kernels on host
// memory. Optimizers over tensors on any device use the same constants through
// ops::adam_update / ops::sgd_update (core/ops/optimizer.h).
#pragma once

#include <cstdint>
#include <span>

#include "core/backend.h"

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
// The f32 constants of one SGD update; momentum is used when hyper.momentum != 0.
SgdStepConstants sgd_step_constants(const SgdHyper& hyper, bool first_step);

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
// The f32 constants of update number hyper.step (bias corrections computed in double);
// throws std::invalid_argument when hyper.step < 1.
AdamStepConstants adam_step_constants(const AdamHyper& hyper);

}  // namespace zt::optim
