// Gradient clipping by global L2 norm over a set of parameters.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace zt::optim {

// The L2 norm of all gradients taken together, accumulated in double.
double global_grad_norm(const std::vector<Tensor>& params);

// Scales every gradient by max_norm / (norm + 1e-6) when the global norm exceeds max_norm
// (PyTorch's clip_grad_norm_ and DeepSpeed's gradient_clipping). Returns the norm before
// clipping. Parameters without a gradient are skipped; a non-finite norm is returned and
// nothing is scaled (the caller decides what an overflow means).
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

}  // namespace zt::optim
