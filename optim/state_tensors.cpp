// The optimizers' state tensors (optim/state_tensors.h).
#include "optim/state_tensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>

#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/optimizer.h"
#include "core/ops/view.h"

namespace zt::optim {

Tensor gradient_of(const Tensor& param, const char* optimizer) {
  Tensor grad = param.grad();
  if (grad.sizes() != param.sizes()) {
    throw std::invalid_argument(fmt::format("{}: gradient shape {} differs from parameter {}",
                                            optimizer, shape_str(grad.sizes()),
                                            shape_str(param.sizes())));
  }
  return ops::contiguous(ops::to_dtype(grad, DType::f32));
}

Tensor new_state_like(const Tensor& param) {
  bool offloaded = param.storage() && is_host_resident(param.storage()->tag());
  MemoryTag tag = offloaded ? MemoryTag::optim_state_offload : MemoryTag::optim_state;
  return zeros(param.sizes(), {.dtype = DType::f32, .device = param.device(), .tag = tag});
}

Tensor restored_state(const Tensor& param, const std::string& optimizer, const std::string& name,
                      const Tensor& value) {
  if (!value.defined() || value.sizes() != param.sizes()) {
    throw std::invalid_argument(fmt::format(
        "{}: state {} has shape {}, expected the parameter's {}", optimizer, name,
        value.defined() ? shape_str(value.sizes()) : "(undefined)", shape_str(param.sizes())));
  }
  Tensor state = new_state_like(param);
  ops::copy_(state, value);
  return state;
}

Tensor find_state(const ParamState& state, const std::string& name) {
  for (const auto& [key, value] : state.tensors)
    if (key == name) return value;
  return Tensor();
}

ParamState named_state(int64_t step, const std::vector<std::pair<std::string, Tensor>>& tensors) {
  ParamState state;
  state.step = step;
  if (!tensors.empty() && tensors.front().second.defined()) state.tensors = tensors;
  return state;
}

std::vector<Tensor> restored_states(const Tensor& param, const std::string& optimizer,
                                    const ParamState& state,
                                    const std::vector<std::string>& names) {
  std::vector<Tensor> found;
  size_t defined = 0;
  for (const std::string& name : names) {
    found.push_back(find_state(state, name));
    defined += found.back().defined() ? 1 : 0;
  }
  if (defined != 0 && defined != names.size()) {
    throw std::invalid_argument(
        fmt::format("{}: state needs {} together, or none", optimizer, fmt::join(names, ", ")));
  }
  if (defined == 0) return std::vector<Tensor>(names.size());
  for (size_t i = 0; i < names.size(); ++i)
    found[i] = restored_state(param, optimizer, names[i], found[i]);
  return found;
}

}  // namespace zt::optim
