// The backward graph: a Node turns the gradients of its forward outputs into gradients for its
// inputs, which flow along its next edges. FunctionNode holds one op's backward as a lambda
// over the tensors it saved; AccumulateGrad ends every path at a leaf. Invariants: a node's
// sequence number grows with creation order (the engine runs later nodes first); saved
// tensors are released after backward unless retain_graph, and running a released node throws.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd_meta.h"
#include "core/tensor.h"

namespace zt::autograd {

class Node;

// Where a gradient goes: input `input_nr` of `node`. An edge without a node means "no
// gradient needed" (the input did not require grad).
struct Edge {
  std::shared_ptr<Node> node;
  uint32_t input_nr = 0;
  bool is_valid() const { return node != nullptr; }
};

class Node {
 public:
  explicit Node(std::vector<Edge> next_edges, uint32_t num_inputs = 1);
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  virtual std::string name() const = 0;
  // grads: one per input of this node (one per output of the forward op), undefined where no
  // gradient arrived. Returns one gradient per next edge (undefined where none).
  virtual std::vector<Tensor> apply(std::vector<Tensor>&& grads) = 0;
  // Frees what the node saved for backward. Called by the engine unless retain_graph.
  virtual void release_saved_tensors() {}

  const std::vector<Edge>& next_edges() const { return next_edges_; }
  uint32_t num_inputs() const { return num_inputs_; }
  uint64_t sequence_nr() const { return sequence_nr_; }

  // Hooks on the gradient arriving at input `input_nr` (the hooks of a non-leaf tensor).
  void add_pre_hook(uint32_t input_nr, TensorHook hook);
  // Runs the pre-hooks on `grads` in registration order.
  void run_pre_hooks(std::vector<Tensor>& grads) const;

 protected:
  uint64_t sequence_nr_;

 private:
  std::vector<Edge> next_edges_;
  uint32_t num_inputs_;
  std::vector<std::pair<uint32_t, TensorHook>> pre_hooks_;
};

// Gradients for each input of an op, from the gradient of its single output.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

// One differentiable op's backward: a lambda whose captures are the saved tensors.
class FunctionNode : public Node {
 public:
  FunctionNode(std::string name, std::vector<Edge> next_edges, std::vector<Shape> input_shapes,
               std::vector<DType> input_dtypes, BackwardFn backward);
  std::string name() const override { return name_; }
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  void release_saved_tensors() override;

 private:
  std::string name_;
  // Each returned gradient is checked against its input's shape and dtype.
  std::vector<Shape> input_shapes_;
  std::vector<DType> input_dtypes_;
  BackwardFn backward_;  // empty once released
};

// Accumulates the gradient reaching a leaf into leaf.grad, then fires the leaf's grad-ready
// hooks. The engine runs it once per backward, after every path to the leaf has delivered.
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(Tensor leaf);
  std::string name() const override { return "AccumulateGrad"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  const Tensor& leaf() const { return leaf_; }

 private:
  Tensor leaf_;
};

// The edge a gradient for `tensor` must follow: its grad_fn, its leaf accumulator, or none.
Edge gradient_edge(const Tensor& tensor);
// The accumulator of a leaf that requires grad, created on first use.
std::shared_ptr<AccumulateGrad> grad_accumulator(const Tensor& leaf);

// True when grad mode is on and some input requires grad.
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Records `output` as the result of an op named `name` over `inputs`, whose backward is
// `backward` (one gradient per input; undefined inputs get none). When grad mode is off or no
// input requires grad, records nothing. Returns `output`.
Tensor record(const char* name, const std::vector<Tensor>& inputs, Tensor output,
              BackwardFn backward);

}  // namespace zt::autograd
