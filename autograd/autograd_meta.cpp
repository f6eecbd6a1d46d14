// Creation and lookup of per-tensor autograd metadata, and the leaf grad-ready hook registry.
#include "autograd/autograd_meta.h"

#include <stdexcept>

#include "autograd/node.h"

namespace zt::autograd {

AutogradMeta* meta_of(const Tensor& tensor) {
  if (!tensor.defined()) return nullptr;
  return tensor.impl()->autograd_meta.get();
}

AutogradMeta& ensure_meta(const Tensor& tensor) {
  if (!tensor.defined()) throw std::logic_error("autograd: use of an undefined Tensor");
  auto& slot = tensor.impl()->autograd_meta;
  if (!slot) slot = std::make_shared<AutogradMeta>();
  return *slot;
}

void register_grad_ready_hook(const Tensor& leaf, GradReadyHook hook) {
  if (!leaf.is_leaf() || !leaf.requires_grad()) {
    throw std::invalid_argument(
        "register_grad_ready_hook: expected a leaf tensor that requires grad");
  }
  ensure_meta(leaf).grad_ready_hooks.push_back(std::move(hook));
}

void clear_grad_ready_hooks(const Tensor& leaf) {
  if (AutogradMeta* meta = meta_of(leaf)) meta->grad_ready_hooks.clear();
}

}  // namespace zt::autograd
