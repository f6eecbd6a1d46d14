// Engine::backward in three plain steps, as in micrograd but with dependency counts:
// 1. count, for every node reachable from the roots, how many edges point at it;
// 2. seed the roots' gradient buffers;
// 3. pop the ready node with the highest sequence number, run it, add its outputs into the
//    buffers of its next nodes, and queue each next node whose count drops to zero.
#include "autograd/engine.h"

#include <fmt/format.h>

#include <queue>
#include <stdexcept>
#include <unordered_map>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace zt::autograd {

namespace {

struct LaterFirst {
  bool operator()(const Node* a, const Node* b) const {
    return a->sequence_nr() < b->sequence_nr();
  }
};

// Edges pointing at each node reachable from `roots`.
std::unordered_map<Node*, int> count_dependencies(const std::vector<Node*>& roots) {
  std::unordered_map<Node*, int> dependencies;
  std::vector<Node*> stack;
  std::unordered_map<Node*, bool> seen;
  for (Node* root : roots) {
    if (!seen[root]) {
      seen[root] = true;
      stack.push_back(root);
    }
  }
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Edge& edge : node->next_edges()) {
      if (!edge.is_valid()) continue;
      Node* next = edge.node.get();
      dependencies[next] += 1;
      if (!seen[next]) {
        seen[next] = true;
        stack.push_back(next);
      }
    }
  }
  return dependencies;
}

// Adds `grad` into slot `input_nr` of a node's buffer (out of place: grads may be shared).
void accumulate(std::vector<Tensor>& buffer, uint32_t input_nr, const Tensor& grad) {
  Tensor& slot = buffer[input_nr];
  slot = slot.defined() ? ops::add(slot, grad) : grad;
}

Tensor root_gradient(const Tensor& root, const Tensor& given, size_t index) {
  if (!given.defined()) {
    if (root.numel() != 1) {
      throw std::invalid_argument(fmt::format(
          "backward: a gradient can be implied only for a one-element output; root {} has "
          "shape {}, pass its gradient",
          index, shape_str(root.sizes())));
    }
    return ones_like(root);
  }
  if (given.sizes() != root.sizes()) {
    throw std::invalid_argument(fmt::format("backward: gradient {} has shape {}, root has {}",
                                            index, shape_str(given.sizes()),
                                            shape_str(root.sizes())));
  }
  return given.dtype() == root.dtype() ? given : ops::to_dtype(given, root.dtype());
}

}  // namespace

void Engine::backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads,
                      bool retain_graph) {
  if (roots.size() != root_grads.size()) {
    throw std::invalid_argument(
        fmt::format("backward: {} roots but {} gradients", roots.size(), root_grads.size()));
  }
  NoGradGuard no_grad;
  std::vector<Edge> root_edges;
  std::vector<Node*> root_nodes;
  for (size_t i = 0; i < roots.size(); ++i) {
    Edge edge = gradient_edge(roots[i]);
    if (!edge.is_valid()) {
      throw std::invalid_argument(
          fmt::format("backward: root {} does not require grad and has no grad_fn", i));
    }
    root_edges.push_back(edge);
    root_nodes.push_back(edge.node.get());
  }

  std::unordered_map<Node*, int> dependencies = count_dependencies(root_nodes);
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  auto buffer_of = [&buffers](Node* node) -> std::vector<Tensor>& {
    auto [it, inserted] = buffers.try_emplace(node);
    if (inserted) it->second.resize(node->num_inputs());
    return it->second;
  };
  for (size_t i = 0; i < roots.size(); ++i) {
    accumulate(buffer_of(root_nodes[i]), root_edges[i].input_nr,
               root_gradient(roots[i], root_grads[i], i));
  }

  std::priority_queue<Node*, std::vector<Node*>, LaterFirst> ready;
  for (Node* root : root_nodes) {
    // A root also reachable from another root waits for that one's gradient.
    if (dependencies[root] == 0) {
      dependencies[root] = -1;  // queued: a root listed twice is queued once
      ready.push(root);
    }
  }

  while (!ready.empty()) {
    Node* node = ready.top();
    ready.pop();
    std::vector<Tensor> grads = std::move(buffer_of(node));
    buffers.erase(node);
    node->run_pre_hooks(grads);
    std::vector<Tensor> input_grads = node->apply(std::move(grads));
    if (!retain_graph) node->release_saved_tensors();

    const std::vector<Edge>& edges = node->next_edges();
    for (size_t i = 0; i < edges.size(); ++i) {
      if (!edges[i].is_valid()) continue;
      Node* next = edges[i].node.get();
      std::vector<Tensor>& buffer = buffer_of(next);
      if (i < input_grads.size() && input_grads[i].defined()) {
        accumulate(buffer, edges[i].input_nr, input_grads[i]);
      }
      if (--dependencies[next] == 0) ready.push(next);
    }
  }
}

}  // namespace zt::autograd
