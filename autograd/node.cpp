// Node bookkeeping, the lambda-backed FunctionNode, leaf accumulation, and `record`, which
// attaches a node to an op's output.
#include "autograd/node.h"

#include <fmt/format.h>

#include <atomic>
#include <limits>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace zt::autograd {

static uint64_t next_sequence_nr() {
  static std::atomic<uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

Node::Node(std::vector<Edge> next_edges, uint32_t num_inputs)
    : sequence_nr_(next_sequence_nr()),
      next_edges_(std::move(next_edges)),
      num_inputs_(num_inputs) {}

void Node::add_pre_hook(uint32_t input_nr, TensorHook hook) {
  if (input_nr >= num_inputs_) {
    throw std::out_of_range(
        fmt::format("{}: hook on input {} of {}", name(), input_nr, num_inputs_));
  }
  pre_hooks_.emplace_back(input_nr, std::move(hook));
}

void Node::run_pre_hooks(std::vector<Tensor>& grads) const {
  for (const auto& [input_nr, hook] : pre_hooks_) {
    Tensor& grad = grads[input_nr];
    if (!grad.defined()) continue;
    Tensor replacement = hook(grad);
    if (replacement.defined()) grad = std::move(replacement);
  }
}

FunctionNode::FunctionNode(std::string name, std::vector<Edge> next_edges,
                           std::vector<Shape> input_shapes, std::vector<DType> input_dtypes,
                           BackwardFn backward)
    : Node(std::move(next_edges)),
      name_(std::move(name)),
      input_shapes_(std::move(input_shapes)),
      input_dtypes_(std::move(input_dtypes)),
      backward_(std::move(backward)) {}

std::vector<Tensor> FunctionNode::apply(std::vector<Tensor>&& grads) {
  if (!backward_) {
    throw std::runtime_error(fmt::format(
        "{}: trying to backward through the graph a second time, but its saved tensors were "
        "freed by the previous backward; pass retain_graph=true to the first backward",
        name_));
  }
  const std::vector<Edge>& edges = next_edges();
  if (!grads[0].defined()) return std::vector<Tensor>(edges.size());
  std::vector<Tensor> input_grads = backward_(grads[0]);
  if (input_grads.size() != edges.size()) {
    throw std::logic_error(fmt::format("{}: backward returned {} gradients for {} inputs", name_,
                                       input_grads.size(), edges.size()));
  }
  for (size_t i = 0; i < input_grads.size(); ++i) {
    Tensor& grad = input_grads[i];
    if (!edges[i].is_valid()) {
      grad = Tensor();  // nobody needs it: free it now
      continue;
    }
    if (!grad.defined()) continue;
    if (grad.sizes() != input_shapes_[i] || grad.dtype() != input_dtypes_[i]) {
      throw std::logic_error(fmt::format(
          "{}: gradient for input {} is {} {}, expected {} {}", name_, i, shape_str(grad.sizes()),
          dtype_name(grad.dtype()), shape_str(input_shapes_[i]), dtype_name(input_dtypes_[i])));
    }
  }
  return input_grads;
}

void FunctionNode::release_saved_tensors() {
  backward_ = nullptr;
}

AccumulateGrad::AccumulateGrad(Tensor leaf) : Node({}), leaf_(std::move(leaf)) {
  // Accumulators run as soon as they are ready, so grad-ready hooks fire as early as possible.
  sequence_nr_ = std::numeric_limits<uint64_t>::max();
}

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>&& grads) {
  AutogradMeta& meta = ensure_meta(leaf_);
  Tensor grad = std::move(grads[0]);
  if (grad.defined()) {
    for (size_t i = 0; i < meta.hooks.size(); ++i) {
      Tensor replacement = meta.hooks[i](grad);
      if (replacement.defined()) grad = std::move(replacement);
    }
    if (!meta.grad.defined()) {
      // A fresh buffer: the incoming gradient may be a broadcast view or shared with another
      // node, and later accumulation writes in place. Left unfilled: copy_ writes every element.
      meta.grad = empty(leaf_.sizes(), options_of(leaf_).with_tag(MemoryTag::grad));
      ops::copy_(meta.grad, grad);
    } else {
      ops::add_(meta.grad, grad);
    }
  }
  // Fired even when no gradient arrived, so that a listener counting ready leaves never waits
  // on a leaf that the graph reached with nothing.
  for (size_t i = 0; i < meta.grad_ready_hooks.size(); ++i) meta.grad_ready_hooks[i](leaf_);
  return {};
}

std::shared_ptr<AccumulateGrad> grad_accumulator(const Tensor& leaf) {
  AutogradMeta& meta = ensure_meta(leaf);
  if (meta.grad_fn) throw std::logic_error("grad_accumulator: tensor is not a leaf");
  std::shared_ptr<AccumulateGrad> accumulator = meta.grad_accumulator.lock();
  if (!accumulator) {
    accumulator = std::make_shared<AccumulateGrad>(leaf);
    meta.grad_accumulator = accumulator;
  }
  return accumulator;
}

Edge gradient_edge(const Tensor& tensor) {
  AutogradMeta* meta = meta_of(tensor);
  if (!meta) return {};
  if (meta->grad_fn) return {meta->grad_fn, meta->output_nr};
  if (meta->requires_grad) return {grad_accumulator(tensor), 0};
  return {};
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!is_grad_enabled()) return false;
  for (const Tensor& input : inputs) {
    if (input.defined() && input.requires_grad()) return true;
  }
  return false;
}

Tensor record(const char* name, const std::vector<Tensor>& inputs, Tensor output,
              BackwardFn backward) {
  if (!any_requires_grad(inputs)) return output;
  std::vector<Edge> edges;
  std::vector<Shape> shapes;
  std::vector<DType> dtypes;
  for (const Tensor& input : inputs) {
    if (input.defined() && input.is_same(output)) {
      throw std::logic_error(fmt::format("record: {} returned one of its inputs", name));
    }
    edges.push_back(input.defined() ? gradient_edge(input) : Edge{});
    shapes.push_back(input.defined() ? input.sizes() : Shape{});
    dtypes.push_back(input.defined() ? input.dtype() : DType::f32);
  }
  AutogradMeta& meta = ensure_meta(output);
  meta.grad_fn = std::make_shared<FunctionNode>(name, std::move(edges), std::move(shapes),
                                                std::move(dtypes), std::move(backward));
  meta.output_nr = 0;
  return output;
}

}  // namespace zt::autograd
