// The backward engine: from root tensors and their gradients, runs every node of the graph
// once, latest first, after all gradients for it have arrived, summing gradients that reach
// the same input. Backward runs with grad mode off. Re-entrant: all state lives on the call's
// stack, so a node's apply may run a nested backward (activation checkpointing does).
#pragma once

#include <vector>

#include "core/tensor.h"

namespace zt::autograd {

class Engine {
 public:
  // root_grads[i] is the gradient of roots[i]; an undefined one means ones (scalars only).
  // Unless retain_graph, every node that ran frees its saved tensors.
  static void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads,
                       bool retain_graph = false);
};

}  // namespace zt::autograd
