// Module: the unit models are written in. A module owns named parameters and buffers and named
// child modules, in registration order; names of nested entries are joined with '.', as in
// PyTorch, so state dicts line up with PyTorch's for the same model.
// Calling a module (operator()) runs its forward pre-hooks, forward() and forward hooks: ZeRO
// stage 3 gathers a module's parameters in a pre-hook and releases them in a post-hook, so
// every call of a child must go through operator(), never through forward() directly.
// Invariant: the Tensor handles a module registered are the same impls as the members that
// subclasses keep, so to(dtype) and load_state_dict change both at once (in place).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/safetensors.h"
#include "core/tensor.h"

namespace zt::nn {

using zt::NamedTensors;

class Module : public std::enable_shared_from_this<Module> {
 public:
  using ForwardPreHook = std::function<void(Module& module, const Tensor& input)>;
  using ForwardHook =
      std::function<void(Module& module, const Tensor& input, const Tensor& output)>;

  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Runs pre-hooks, forward, hooks.
  Tensor operator()(const Tensor& input);
  // The module's type, for printing and errors ("Linear", "Sequential", ...).
  virtual std::string type_name() const = 0;
  // One line describing the module's configuration, e.g. "in=784, out=128, bias=true".
  virtual std::string extra_repr() const { return ""; }
  // The module and its children, indented, like PyTorch's print(model).
  std::string repr() const;

  // ---- parameters, buffers, children ----------------------------------------------------
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  // This module and all descendants, depth first, with dotted names ("" for this one).
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules();
  int64_t num_parameters() const;  // total elements of all parameters

  // ---- modes and conversions ------------------------------------------------------------
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Converts every floating parameter and buffer in place (gradients are dropped).
  void to(DType dtype);
  // Moves every parameter and buffer to `device` in place (gradients are dropped), keeping
  // dtypes and memory tags, as PyTorch's module.to(device).
  void to(Device device);
  void zero_grad();  // drops the gradients of every parameter

  // ---- hooks --------------------------------------------------------------------------
  int64_t register_forward_pre_hook(ForwardPreHook hook);
  int64_t register_forward_hook(ForwardHook hook);
  void remove_hook(int64_t handle);

  // ---- state dict -------------------------------------------------------------------------
  // Parameters then buffers of each module, depth first, under their dotted names.
  NamedTensors state_dict() const;
  // Copies values in place. strict: every name must match both ways. Errors name the tensor
  // and what was expected (missing, unexpected, or the shapes).
  void load_state_dict(const NamedTensors& state, bool strict = true);
  // safetensors files, readable by PyTorch's safetensors.torch.load_file.
  void save(const std::string& path) const;
  void load(const std::string& path, bool strict = true);

 protected:
  Module() = default;
  virtual Tensor forward(const Tensor& input) = 0;

  // A parameter: tagged `param` in memory accounting and a leaf that requires grad.
  Tensor register_parameter(const std::string& name, Tensor tensor);
  Tensor register_buffer(const std::string& name, Tensor tensor);
  template <typename ModuleType>
  std::shared_ptr<ModuleType> register_module(const std::string& name,
                                              std::shared_ptr<ModuleType> module) {
    add_child(name, module);
    return module;
  }
  void add_child(const std::string& name, std::shared_ptr<Module> module);

 private:
  void check_new_name(const std::string& name) const;
  void repr_into(std::string& text, int indent) const;

  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<std::pair<int64_t, ForwardPreHook>> pre_hooks_;
  std::vector<std::pair<int64_t, ForwardHook>> post_hooks_;
  int64_t next_hook_handle_ = 0;
  bool training_ = true;
};

}  // namespace zt::nn
