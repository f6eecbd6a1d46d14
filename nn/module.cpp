// Module bookkeeping: registration, recursive traversal with dotted names, calls and hooks.
// Conversions: nn/module_conversion.cpp; the state dict: nn/module_state_dict.cpp.
#include "nn/module.h"

#include <fmt/format.h>

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <set>
#include <stdexcept>
#include <typeinfo>
#include <utility>

#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "nn/construction_observer.h"

namespace zt::nn {

namespace detail {
// See nn/module.h.
std::string joined_name(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  return name.empty() ? prefix : prefix + "." + name;  // a child module itself: just its name
}
}  // namespace detail

using detail::joined_name;

Module::~Module() {
  if (ConstructionObserver* observer = construction_observer()) observer->module_destroyed(*this);
}

std::string Module::type_name() const {
  // typeid names the dynamic type (the subclass); the ABI's demangler makes it readable.
  const char* mangled = typeid(*this).name();
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  std::string name = status == 0 && demangled ? demangled.get() : mangled;
  // Drops the namespaces (and enclosing classes or functions): the last "::" outside
  // template arguments and parentheses. "my::Block<int>" -> "Block<int>".
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '<' || c == '(') ++depth;
    if (c == '>' || c == ')') --depth;
    if (depth == 0 && c == ':' && i + 1 < name.size() && name[i + 1] == ':') start = i + 2;
  }
  return name.substr(start);
}

Tensor Module::operator()(const Tensor& input) {
  TensorList outputs = (*this)(TensorList{input});
  if (outputs.size() != 1) {
    throw std::invalid_argument(
        fmt::format("{}: returned {} outputs; call it with a TensorList to receive several",
                    type_name(), outputs.size()));
  }
  return std::move(outputs.front());
}

TensorList Module::operator()(const TensorList& inputs) {
  if (replaced_by_) return (*replaced_by_)(inputs);
  // The inputs are copied only when a pre-hook replaces them.
  std::optional<TensorList> replaced_inputs;
  for (auto& [handle, hook] : pre_hooks_) {
    if (std::optional<TensorList> replaced =
            hook(*this, replaced_inputs ? *replaced_inputs : inputs))
      replaced_inputs = std::move(replaced);
  }
  const TensorList& call_inputs = replaced_inputs ? *replaced_inputs : inputs;
  TensorList outputs = forward_many(call_inputs);
  for (auto& [handle, hook] : post_hooks_) {
    if (std::optional<TensorList> replaced = hook(*this, call_inputs, outputs))
      outputs = std::move(*replaced);
  }
  return outputs;
}

Tensor Module::forward(const Tensor&) {
  throw std::invalid_argument(
      fmt::format("{}: forward takes several inputs; call it with all of them (module(a, b, ...))",
                  type_name()));
}

TensorList Module::forward_many(const TensorList& inputs) {
  if (inputs.size() != 1) {
    throw std::invalid_argument(
        fmt::format("{}: forward takes 1 input, got {}", type_name(), inputs.size()));
  }
  return {forward(inputs.front())};
}

void Module::check_new_name(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos) {
    throw std::invalid_argument(
        fmt::format("{}: name \"{}\" must be non-empty and contain no '.'", type_name(), name));
  }
  auto taken = [&](const auto& entries) {
    for (const auto& entry : entries) {
      if (entry.first == name) return true;
    }
    return false;
  };
  if (taken(parameters_) || taken(buffers_) || taken(children_)) {
    throw std::invalid_argument(fmt::format("{}: \"{}\" is already registered", type_name(), name));
  }
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor) {
  check_new_name(name);
  if (tensor.storage()->tag() != MemoryTag::param || !tensor.is_contiguous() || tensor.grad_fn()) {
    // Parameters own contiguous, param-tagged storage and are leaves.
    Tensor owned =
        empty(tensor.sizes(),
              {.dtype = tensor.dtype(), .device = tensor.device(), .tag = MemoryTag::param});
    ops::copy_(owned, tensor);
    tensor = owned;
  }
  tensor.set_requires_grad(true);
  if (ConstructionObserver* observer = construction_observer())
    observer->parameter_registered(*this, name, tensor);
  parameters_.emplace_back(name, tensor);
  return tensor;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor) {
  check_new_name(name);
  buffers_.emplace_back(name, tensor);
  return tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name);
  if (!module)
    throw std::invalid_argument(fmt::format("{}: child \"{}\" is null", type_name(), name));
  children_.emplace_back(name, module);
  if (ConstructionObserver* observer = construction_observer())
    observer->child_registered(*this, name, *module);
}

void Module::replace_child(const std::string& name, std::shared_ptr<Module> replacement) {
  if (!replacement)
    throw std::invalid_argument(
        fmt::format("{}: replacement of \"{}\" is null", type_name(), name));
  for (auto& [child_name, child] : children_) {
    if (child_name != name) continue;
    std::shared_ptr<Module> old = std::exchange(child, replacement);
    old->parameters_.clear();
    old->buffers_.clear();
    old->children_.clear();
    old->replaced_by_ = std::move(replacement);
    return;
  }
  throw std::invalid_argument(fmt::format("{}: no child \"{}\" to replace", type_name(), name));
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors result = parameters_;
  if (recurse) {
    for (const auto& [child_name, child] : children_) {
      for (auto& [name, tensor] : child->named_parameters(true)) {
        result.emplace_back(joined_name(child_name, name), tensor);
      }
    }
  }
  // A parameter registered twice (a tied weight) keeps its first name only, so an optimizer
  // over parameters() steps it once.
  std::set<const TensorImpl*> seen;
  std::erase_if(result,
                [&seen](const auto& entry) { return !seen.insert(entry.second.impl()).second; });
  return result;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> result;
  for (auto& [name, tensor] : named_parameters(recurse)) result.push_back(tensor);
  return result;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors result = buffers_;
  if (!recurse) return result;
  for (const auto& [child_name, child] : children_) {
    for (auto& [name, tensor] : child->named_buffers(true)) {
      result.emplace_back(joined_name(child_name, name), tensor);
    }
  }
  return result;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> result;
  result.emplace_back("", shared_from_this());
  for (const auto& [child_name, child] : children_) {
    for (auto& [name, module] : child->named_modules()) {
      result.emplace_back(joined_name(child_name, name), module);
    }
  }
  return result;
}

Tensor add_parameter(Module& module, const std::string& name, Tensor tensor) {
  return module.register_parameter(name, std::move(tensor));
}

Tensor add_buffer(Module& module, const std::string& name, Tensor tensor) {
  return module.register_buffer(name, std::move(tensor));
}

void register_external_parameter(Module& module, const Tensor& parameter) {
  if (!parameter.defined() || !parameter.requires_grad() || parameter.grad_fn()) {
    throw std::invalid_argument(fmt::format(
        "register_external_parameter: {}: expected a parameter (a leaf tensor that requires "
        "grad, as another module registered it), got {}",
        module.type_name(),
        parameter.defined() ? "a tensor of shape " + shape_str(parameter.sizes()) +
                                  (parameter.grad_fn() ? " computed by an op" : " without grad")
                            : "an undefined tensor"));
  }
  for (const Tensor& known : module.external_parameters_) {
    if (known.impl() == parameter.impl()) return;
  }
  module.external_parameters_.push_back(parameter);
}

int64_t Module::num_parameters() const {
  int64_t count = 0;
  for (const Tensor& param : parameters()) count += param.numel();
  return count;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (const Tensor& param : parameters()) param.set_grad(Tensor());
}

int64_t Module::add_pre_hook(ForwardPreHook hook) {
  pre_hooks_.emplace_back(next_hook_handle_, std::move(hook));
  return next_hook_handle_++;
}

int64_t Module::add_post_hook(ForwardHook hook) {
  post_hooks_.emplace_back(next_hook_handle_, std::move(hook));
  return next_hook_handle_++;
}

void Module::remove_hook(int64_t handle) {
  std::erase_if(pre_hooks_, [handle](const auto& entry) { return entry.first == handle; });
  std::erase_if(post_hooks_, [handle](const auto& entry) { return entry.first == handle; });
}

std::string Module::repr() const {
  std::string text;
  repr_into(text, 0);
  return text;
}

void Module::repr_into(std::string& text, int indent) const {
  text += type_name() + "(" + extra_repr();
  if (children_.empty()) {
    text += ")";
    return;
  }
  text += "\n";
  for (const auto& [name, child] : children_) {
    text += std::string(size_t(indent + 2), ' ') + "(" + name + "): ";
    child->repr_into(text, indent + 2);
    text += "\n";
  }
  text += std::string(size_t(indent), ' ') + ")";
}

}  // namespace zt::nn
