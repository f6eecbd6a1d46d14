// Autograd metadata of one tensor: whether it requires grad, its gradient, the node that made
// it and its hooks. It exists only on tensors autograd has touched (TensorImpl::autograd_meta),
// so tensors that never see autograd carry nothing. Invariant: a leaf has no grad_fn; a
// non-leaf's requires_grad is implied by its grad_fn.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace zt::autograd {

class Node;
class AccumulateGrad;

// Sees the gradient flowing into a tensor; returns a replacement, or an undefined Tensor to
// keep it.
using TensorHook = std::function<Tensor(const Tensor& grad)>;
// Called with the leaf once its .grad is final for the current backward.
using GradReadyHook = std::function<void(const Tensor& leaf)>;

struct AutogradMeta {
  bool requires_grad = false;  // set on leaves; non-leaves require grad through grad_fn
  Tensor grad;                 // leaves: accumulated over backward calls until cleared
  std::shared_ptr<Node> grad_fn;
  uint32_t output_nr = 0;  // which output of grad_fn this tensor is
  // The node that accumulates into this leaf; weak because the graph owns it, so it dies with
  // the last graph that uses the leaf.
  std::weak_ptr<AccumulateGrad> grad_accumulator;
  std::vector<TensorHook> hooks;                // leaves; non-leaf hooks live on grad_fn
  std::vector<GradReadyHook> grad_ready_hooks;  // leaves only
};

// The metadata of `tensor`, or null when autograd has never touched it.
AutogradMeta* meta_of(const Tensor& tensor);
// The metadata of `tensor`, created empty when missing.
AutogradMeta& ensure_meta(const Tensor& tensor);

// Registers a hook called after `leaf`'s gradient is accumulated and final for a backward
// (once per leaf per backward that reaches it): data parallelism starts reducing here.
void register_grad_ready_hook(const Tensor& leaf, GradReadyHook hook);
void clear_grad_ready_hooks(const Tensor& leaf);

}  // namespace zt::autograd
