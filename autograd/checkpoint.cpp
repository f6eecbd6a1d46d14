// CheckpointNode: the backward of a checkpointed piece. It holds fn, the saved inputs (aliases,
// or copies placed by the checkpointing options: checkpoint_storage.h) and the RNG state at
// entry; apply() replays fn on fresh leaves under the saved RNG state and runs a nested
// Engine::backward (the engine keeps all state on its stack, so it is re-entrant), then returns
// the gradients those leaves received.
#include "autograd/checkpoint.h"

#include <fmt/format.h>

#include <chrono>
#include <stdexcept>
#include <unordered_set>
#include <utility>

#include "autograd/autograd_meta.h"
#include "autograd/checkpoint_storage.h"
#include "autograd/checkpointing_options.h"
#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/backend.h"
#include "core/generator.h"

namespace zt {

namespace {

// synchronize_checkpoint_boundary: waits for the device's queued work at each boundary of a
// checkpointed piece (entering and leaving it in forward, before the recomputation and after
// its nested backward), as DeepSpeed does, so that a profile or timer at the boundary sees the
// piece's kernels finished. A no-op on the CPU, whose kernels are done when they return.
void synchronize_at_boundary(const std::vector<Tensor>& tensors) {
  if (!checkpointing_options().synchronize_checkpoint_boundary) return;
  for (const Tensor& tensor : tensors) {
    if (!tensor.defined()) continue;
    backend_for(tensor.device()).synchronize(tensor.device());
    return;
  }
}

struct RngState {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

RngState rng_state_of(const Generator& generator) {
  return {generator.seed(), generator.offset()};
}

// Puts the default generator at `replayed` for a scope and back where it was afterwards, so a
// recomputation draws the same numbers as the forward and the stream after backward continues
// as if fn had run only once.
class ReplayRngGuard {
 public:
  explicit ReplayRngGuard(RngState replayed) : resumed_(rng_state_of(default_generator())) {
    default_generator().set_state(replayed.seed, replayed.offset);
  }
  ~ReplayRngGuard() { default_generator().set_state(resumed_.seed, resumed_.offset); }
  ReplayRngGuard(const ReplayRngGuard&) = delete;
  ReplayRngGuard& operator=(const ReplayRngGuard&) = delete;

 private:
  RngState resumed_;
};

class CheckpointNode : public autograd::Node {
 public:
  CheckpointNode(std::vector<autograd::Edge> next_edges, uint32_t num_outputs, CheckpointFn fn,
                 std::vector<SavedCheckpointInput> saved_inputs,
                 std::vector<bool> input_requires_grad, RngState rng_at_entry)
      : Node(std::move(next_edges), num_outputs),
        fn_(std::move(fn)),
        saved_inputs_(std::move(saved_inputs)),
        input_requires_grad_(std::move(input_requires_grad)),
        rng_at_entry_(rng_at_entry) {}

  std::string name() const override { return "CheckpointBackward"; }

  std::vector<Tensor> apply(std::vector<Tensor>&& output_grads) override {
    if (!fn_) {
      throw std::runtime_error(
          "CheckpointBackward: trying to backward through a checkpoint a second time, but its "
          "saved inputs were freed by the previous backward; pass retain_graph=true to the "
          "first backward");
    }
    // Leaves standing in for the inputs that require grad; their .grad is what we return.
    std::vector<Tensor> replay_inputs;
    std::vector<Tensor> grad_leaves;
    for (size_t i = 0; i < saved_inputs_.size(); ++i) {
      Tensor saved = restore_checkpoint_input(saved_inputs_[i]);
      if (input_requires_grad_[i]) {
        Tensor leaf = saved.detach();
        leaf.set_requires_grad(true);
        grad_leaves.push_back(leaf);
        replay_inputs.push_back(leaf);
      } else {
        replay_inputs.push_back(saved);
      }
    }
    synchronize_at_boundary(replay_inputs);
    const bool profile = checkpointing_options().profile;
    const auto recompute_start = std::chrono::steady_clock::now();
    std::vector<Tensor> recomputed;
    {
      ReplayRngGuard replay(rng_at_entry_);
      autograd::GradModeGuard record(true);
      recomputed = fn_(replay_inputs);
    }
    if (profile) {
      record_recomputation(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - recompute_start)
              .count());
    }
    if (recomputed.size() != num_inputs()) {
      throw std::logic_error(
          fmt::format("CheckpointBackward: fn returned {} outputs in forward "
                      "but {} when recomputed",
                      num_inputs(), recomputed.size()));
    }
    check_no_foreign_nodes(recomputed);

    std::vector<Tensor> roots;
    std::vector<Tensor> root_grads;
    for (size_t i = 0; i < recomputed.size(); ++i) {
      if (!output_grads[i].defined() || !recomputed[i].defined()) continue;
      if (!recomputed[i].requires_grad()) continue;
      roots.push_back(recomputed[i]);
      root_grads.push_back(std::move(output_grads[i]));
    }
    recomputed.clear();
    // The recomputed graph is rebuilt by every apply, so it is always freed here.
    if (!roots.empty()) autograd::Engine::backward(roots, root_grads, /*retain_graph=*/false);
    synchronize_at_boundary(replay_inputs);

    std::vector<Tensor> input_grads;
    for (const Tensor& leaf : grad_leaves) input_grads.push_back(leaf.grad());
    return input_grads;
  }

  void release_saved_tensors() override {
    fn_ = nullptr;
    saved_inputs_.clear();
    input_requires_grad_.clear();
  }

 private:
  // A node made before this one is part of the outer graph: fn reached it through a captured
  // non-leaf, and the nested backward would run (and free) it out of turn.
  void check_no_foreign_nodes(const std::vector<Tensor>& recomputed) const {
    std::vector<autograd::Node*> stack;
    std::unordered_set<autograd::Node*> seen;
    for (const Tensor& output : recomputed) {
      autograd::AutogradMeta* meta = output.defined() ? autograd::meta_of(output) : nullptr;
      if (meta && meta->grad_fn && seen.insert(meta->grad_fn.get()).second) {
        stack.push_back(meta->grad_fn.get());
      }
    }
    while (!stack.empty()) {
      autograd::Node* node = stack.back();
      stack.pop_back();
      if (node->sequence_nr() < sequence_nr()) {
        throw std::invalid_argument(fmt::format(
            "checkpoint: fn uses a tensor made by {} outside the checkpoint; pass it in the "
            "inputs so its gradient flows through the checkpoint node",
            node->name()));
      }
      for (const autograd::Edge& edge : node->next_edges()) {
        if (edge.is_valid() && seen.insert(edge.node.get()).second) {
          stack.push_back(edge.node.get());
        }
      }
    }
  }

  CheckpointFn fn_;                                 // empty once released
  std::vector<SavedCheckpointInput> saved_inputs_;  // in fn's argument order
  std::vector<bool> input_requires_grad_;  // true for the inputs that have an edge, in order
  RngState rng_at_entry_;
};

}  // namespace

std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs) {
  if (!fn) throw std::invalid_argument("checkpoint: fn is empty");
  if (!autograd::is_grad_enabled()) return fn(inputs);

  RngState rng_at_entry = rng_state_of(default_generator());
  synchronize_at_boundary(inputs);
  std::vector<Tensor> outputs;
  {
    NoGradGuard no_grad;  // records nothing, so fn's intermediates die as it returns
    outputs = fn(inputs);
  }
  synchronize_at_boundary(outputs);

  std::vector<autograd::Edge> edges;
  std::vector<bool> input_requires_grad;
  for (const Tensor& input : inputs) {
    const bool requires_grad = input.defined() && input.requires_grad();
    if (requires_grad) edges.push_back(autograd::gradient_edge(input));
    input_requires_grad.push_back(requires_grad);
  }
  auto node =
      std::make_shared<CheckpointNode>(std::move(edges), uint32_t(outputs.size()), fn,
                                       save_checkpoint_inputs(inputs, checkpointing_options()),
                                       std::move(input_requires_grad), rng_at_entry);

  for (size_t i = 0; i < outputs.size(); ++i) {
    if (!outputs[i].defined()) continue;
    // A fresh alias: fn may hand back an input or a captured tensor, whose own graph
    // position must not change.
    outputs[i] = outputs[i].detach();
    autograd::AutogradMeta& meta = autograd::ensure_meta(outputs[i]);
    meta.grad_fn = node;
    meta.output_nr = uint32_t(i);
  }
  return outputs;
}

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& input) {
  if (!fn) throw std::invalid_argument("checkpoint: fn is empty");
  CheckpointFn wrapped = [fn](const std::vector<Tensor>& inputs) {
    return std::vector<Tensor>{fn(inputs[0])};
  };
  return checkpoint(wrapped, std::vector<Tensor>{input})[0];
}

}  // namespace zt
