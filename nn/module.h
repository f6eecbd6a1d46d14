// Module: the unit models are written in. A module owns named parameters and buffers and named
// child modules, in registration order; names of nested entries are joined with '.', as in
// PyTorch, so state dicts line up with PyTorch's for the same model.
// Calling a module (operator()) runs its forward pre-hooks, forward and forward hooks: ZeRO
// stage 3 gathers a module's parameters in a pre-hook and releases them in a post-hook, so
// every call of a child must go through operator(), never through forward() directly.
// A module takes and returns one tensor or several, as PyTorch modules do (an input and a mask,
// `(idx, targets)` in and `(logits, loss)` out, a KV cache); an undefined Tensor in a list
// stands for None, an optional argument left out. A module with one input and one output
// overrides forward(const Tensor&); one with several overrides forward_many(const TensorList&).
// Invariant: the Tensor handles a module registered are the same impls as the members that
// subclasses keep, so to(dtype) and load_state_dict change both at once (in place).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/safetensors.h"
#include "core/tensor.h"

namespace zt::nn {

using zt::NamedTensors;

// The inputs or the outputs of one call of a module, in order; an undefined Tensor is None.
using TensorList = std::vector<Tensor>;

class Module;
namespace detail {
// What a pointer-like argument of register_module points to (Module when it is not one).
template <typename Pointer, typename = void>
struct Pointee {
  using type = Module;
};
template <typename Pointer>
struct Pointee<Pointer, std::void_t<typename Pointer::element_type>> {
  using type = typename Pointer::element_type;
};
template <typename Element>
struct Pointee<Element*> {
  using type = Element;
};
// The dotted name of a child's entry: "prefix.name", or whichever of the two is non-empty (a
// child module itself is named by its prefix alone).
std::string joined_name(const std::string& prefix, const std::string& name);
}  // namespace detail

class Module : public std::enable_shared_from_this<Module> {
 public:
  // A pre-hook sees the inputs before forward and may return replacements for them; a forward
  // hook sees inputs and outputs after it and may return replacement outputs, as PyTorch's
  // hooks may. std::nullopt (or a hook returning void) keeps what was there.
  using ForwardPreHook =
      std::function<std::optional<TensorList>(Module& module, const TensorList& inputs)>;
  using ForwardHook = std::function<std::optional<TensorList>(
      Module& module, const TensorList& inputs, const TensorList& outputs)>;

  virtual ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Runs pre-hooks, forward, hooks. The one-tensor form needs exactly one output.
  Tensor operator()(const Tensor& input);
  TensorList operator()(const TensorList& inputs);
  template <typename... More>
  requires(std::is_convertible_v<const More&, const Tensor&>&&...) TensorList operator()(
      const Tensor& first, const Tensor& second, const More&... more) {
    return (*this)(TensorList{first, second, Tensor(more)...});
  }
  // The module's type, for printing and errors ("Linear", "Sequential", ...). By default the
  // class's own name without its namespaces, as PyTorch prints type(module).__name__.
  virtual std::string type_name() const;
  // One line describing the module's configuration, e.g. "in=784, out=128, bias=true".
  virtual std::string extra_repr() const { return ""; }
  // The module and its children, indented, like PyTorch's print(model).
  std::string repr() const;

  // ---- parameters, buffers, children ----------------------------------------------------
  // Each parameter once, under its first name, as PyTorch's named_parameters: a parameter that
  // two modules registered (a tied weight) is listed, counted and optimized once.
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  // Parameters of other modules that this module's forward reads (register_external_parameter).
  const std::vector<Tensor>& external_parameters() const { return external_parameters_; }
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  // This module and all descendants, depth first, with dotted names ("" for this one).
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules();
  int64_t num_parameters() const;  // total elements of all parameters

  // ---- modes and conversions ------------------------------------------------------------
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Converts every floating parameter and buffer in place (gradients are dropped). A parameter
  // built partitioned (core/partitioned_values.h) converts its slice.
  void to(DType dtype);
  // Moves every parameter and buffer to `device` in place (gradients are dropped), keeping
  // dtypes and memory tags, as PyTorch's module.to(device).
  void to(Device device);
  void zero_grad();  // drops the gradients of every parameter

  // ---- hooks --------------------------------------------------------------------------
  // Hooks run in registration order; each returns a handle for remove_hook. A hook may
  // return void or std::optional<TensorList> (see ForwardPreHook).
  template <typename Hook>
  int64_t register_forward_pre_hook(Hook hook) {
    if constexpr (std::is_void_v<std::invoke_result_t<Hook&, Module&, const TensorList&>>) {
      return add_pre_hook(
          [hook = std::move(hook)](Module& module,
                                   const TensorList& inputs) -> std::optional<TensorList> {
            hook(module, inputs);
            return std::nullopt;
          });
    } else {
      return add_pre_hook(ForwardPreHook(std::move(hook)));
    }
  }
  template <typename Hook>
  int64_t register_forward_hook(Hook hook) {
    using Result = std::invoke_result_t<Hook&, Module&, const TensorList&, const TensorList&>;
    if constexpr (std::is_void_v<Result>) {
      return add_post_hook(
          [hook = std::move(hook)](Module& module, const TensorList& inputs,
                                   const TensorList& outputs) -> std::optional<TensorList> {
            hook(module, inputs, outputs);
            return std::nullopt;
          });
    } else {
      return add_post_hook(ForwardHook(std::move(hook)));
    }
  }
  void remove_hook(int64_t handle);

  // ---- replacing a child ------------------------------------------------------------------
  // Puts `replacement` in the place of the child `name` (a quantized layer for a Linear): the
  // tree (parameters, buffers, state dict, named_modules, to()) then holds the replacement, and
  // the old child hands every call to it, so that a parent's own member pointing at the old
  // child (`(*c_proj)(x)`) runs the replacement without any change to the parent's code. The
  // old child gives up its parameters, buffers and children, whose memory goes once nothing
  // else holds them. Throws naming `name` when there is no such child.
  void replace_child(const std::string& name, std::shared_ptr<Module> replacement);

  // ---- state dict -------------------------------------------------------------------------
  // Parameters then buffers of each module, depth first, under their dotted names; a tied
  // parameter appears under each of its names, as in PyTorch.
  NamedTensors state_dict() const;
  // Copies values in place. strict: every name must match both ways, except that a tied
  // parameter needs only one of its names. Errors name the tensor and what was expected
  // (missing, unexpected, or the shapes).
  void load_state_dict(const NamedTensors& state, bool strict = true);
  // safetensors files, as safetensors.torch.save_model / load_model write and read them: a
  // tied parameter is stored once (nn/shared_tensors.h).
  void save(const std::string& path) const;
  void load(const std::string& path, bool strict = true);

 protected:
  Module() = default;
  // One input, one output. The default throws: a module overrides this or forward_many.
  virtual Tensor forward(const Tensor& input);
  // Any number of inputs and outputs. The default passes a single input to forward(Tensor)
  // and refuses any other count, naming the module.
  virtual TensorList forward_many(const TensorList& inputs);

  // A parameter: tagged `param` in memory accounting and a leaf that requires grad.
  Tensor register_parameter(const std::string& name, Tensor tensor);
  Tensor register_buffer(const std::string& name, Tensor tensor);
  template <typename ModuleType>
  std::shared_ptr<ModuleType> register_module(const std::string& name,
                                              std::shared_ptr<ModuleType> module) {
    static_assert(std::is_base_of_v<Module, ModuleType>,
                  "register_module: the child must be a zt::nn::Module subclass");
    add_child(name, module);
    return module;
  }
  // Anything but a shared_ptr (a unique_ptr, a raw pointer, a module by value): one error line
  // of ours instead of a failed template deduction. It returns what the right call would, so
  // that `child = register_module(...)` adds no second error. Children are shared, as in
  // PyTorch, so that the parent and the caller can both hold them.
  template <typename NotSharedPtr>
  std::shared_ptr<typename detail::Pointee<std::remove_cvref_t<NotSharedPtr>>::type>
  register_module(const std::string& name, NotSharedPtr&& module) {
    static_assert(sizeof(NotSharedPtr) == 0,
                  "register_module: pass the child as a std::shared_ptr "
                  "(std::make_shared<YourModule>(...))");
    (void)name;
    (void)module;
    return nullptr;
  }
  void add_child(const std::string& name, std::shared_ptr<Module> module);

  // A module holding a buffer in another form than the one it saves (a quantized layer's codes
  // kept only in its GEMM's panel layout) overrides both. saved_buffers: the state dict's
  // entries for this module's own buffers (by default the buffers). load_saved_buffers: values
  // for some of those names, shapes already checked (by default copied in place).
  virtual NamedTensors saved_buffers() const { return buffers_; }
  virtual void load_saved_buffers(const NamedTensors& values);

 private:
  friend void register_external_parameter(Module& module, const Tensor& parameter);
  friend Tensor add_parameter(Module& module, const std::string& name, Tensor tensor);

  // Registers a buffer on `module` from outside it (compression's static activation range, as
  // DeepSpeed's QuantAct keeps it), so state dicts and checkpoints carry it.
  Tensor add_buffer(Module& module, const std::string& name, Tensor tensor);
  friend Tensor add_buffer(Module& module, const std::string& name, Tensor tensor);
  int64_t add_pre_hook(ForwardPreHook hook);
  int64_t add_post_hook(ForwardHook hook);
  void check_new_name(const std::string& name) const;
  void repr_into(std::string& text, int indent) const;
  // load_state_dict's copies, once every name and shape is checked: `found` by dotted name.
  void load_checked(const std::map<std::string, Tensor>& found, const std::string& prefix);

  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<Tensor> external_parameters_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::shared_ptr<Module> replaced_by_;  // set by the parent's replace_child
  std::vector<std::pair<int64_t, ForwardPreHook>> pre_hooks_;
  std::vector<std::pair<int64_t, ForwardHook>> post_hooks_;
  int64_t next_hook_handle_ = 0;
  bool training_ = true;
};

// Declares that `module`'s forward reads `parameter`, a parameter some other module registered
// (a head reading the embedding's weight), as DeepSpeed's
// deepspeed.zero.register_external_parameter: ZeRO stage 3 then gathers it around `module`'s
// forward and backward too. Without it, stage 3 has released the parameter by the time
// `module` reads it, and the read fails naming the parameter. Harmless at other stages.
void register_external_parameter(Module& module, const Tensor& parameter);

// Registers a parameter on `module` from outside it, as DeepSpeed's compression adds learned
// mask scores to the layers it compresses: before zt::initialize, so the engine, the optimizer
// and ZeRO treat it as any other parameter of the module.
Tensor add_parameter(Module& module, const std::string& name, Tensor tensor);

// Registers a buffer on `module` from outside it (compression's static activation range, as
// DeepSpeed's QuantAct keeps it), so state dicts and checkpoints carry it.
Tensor add_buffer(Module& module, const std::string& name, Tensor tensor);

}  // namespace zt::nn
