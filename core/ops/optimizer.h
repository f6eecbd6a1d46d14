// Fused optimizer updates over a list of tensors, checked: the entry points that optimizers
// call for parameters on any device. Each call is one backend call (on CUDA one kernel launch
// for the whole list); the constants come from optim/update_rules.h.
#pragma once

#include <span>
#include <vector>

#include "core/backend.h"

namespace zt::ops {

// Every operand must be a defined, contiguous f32 tensor with the numel of its param, and every
// tensor of the list on one device (tensors[0].param's); SGD's momentum_buffer is checked and
// updated only when constants.use_momentum, and ignored otherwise. Throws std::invalid_argument
// naming the list index, the operand and what was expected. An empty list does nothing.
void adam_update(std::span<const AdamOperands> tensors, const AdamStepConstants& constants);
void sgd_update(std::span<const SgdOperands> tensors, const SgdStepConstants& constants);
// LAMB's two passes (Backend::lamb_moments / lamb_apply), checked as adam_update's operands
// are. lamb_moments returns two sums of squares per tensor: [2 i] of the weight before the
// update, [2 i + 1] of the update direction. lamb_apply needs one scale per tensor.
std::vector<double> lamb_moments(std::span<const AdamOperands> tensors,
                                 const LambStepConstants& constants);
void lamb_apply(std::span<const AdamOperands> tensors, const LambStepConstants& constants,
                std::span<const float> scales);

}  // namespace zt::ops
