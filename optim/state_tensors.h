// The optimizers' state tensors: the gradient as contiguous f32, new state where the parameter
// lives (counted as offloaded when the parameter is), checked restores from checkpoints.
// Shared by every optimizer of optim/ so that each handles state the same way.
#pragma once

#include <string>
#include <utility>
#include <vector>

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

// What a checkpoint keeps of one parameter: its step and the named tensors, which an optimizer
// makes together on the first update, so none while the first is undefined.
ParamState named_state(int64_t step, const std::vector<std::pair<std::string, Tensor>>& tensors);
// The tensors `names` of `state` restored for `param` (restored_state), in that order: all of
// them, or all undefined when `state` holds none (a parameter not updated yet). Some without
// the others throws naming `optimizer` and the names.
std::vector<Tensor> restored_states(const Tensor& param, const std::string& optimizer,
                                    const ParamState& state, const std::vector<std::string>& names);

}  // namespace zt::optim
