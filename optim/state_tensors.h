// The optimizers' state tensors: the gradient as contiguous f32, new state where the parameter
// lives (counted as offloaded when the parameter is), checked restores from checkpoints.
// Shared by every optimizer of optim/ so that each handles state the same way.
#pragma once

#include <string>

#include "optim/optimizer.h"

namespace zt::optim {

// The gradient as a contiguous f32 tensor of the parameter's shape; throws naming `optimizer`
// when its shape differs.
Tensor gradient_of(const Tensor& param, const char* optimizer);
// Zeros of the parameter's shape on its device, tagged optim_state (or optim_state_offload).
Tensor new_state_like(const Tensor& param);
// A copy of `value` in a fresh state tensor, checked against the parameter's shape.
Tensor restored_state(const Tensor& param, const std::string& optimizer, const std::string& name,
                      const Tensor& value);
// The tensor named `name` in `state`, or an undefined one.
Tensor find_state(const ParamState& state, const std::string& name);

}  // namespace zt::optim
