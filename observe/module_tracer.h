// ModuleTracer: forward and backward spans per module of a model, on the compute track of the
// trace. Forward: from the module's pre-hook to its post-hook. Backward: from the gradient
// reaching the first of its outputs to the gradient reaching the first of its inputs that
// needs one; a module none of whose inputs needs a gradient (the first layer, the model
// itself) ends when backward returns (end_backward). Hooks record only while the trace
// recorder is recording.
// Hook order matters around other hooks (ZeRO stage 3 gathers in a pre-hook and releases in a
// post-hook): the post-hooks are registered at construction, before the engine's, and the
// pre-hooks by register_pre_hooks() after them, so a forward span starts after its gather and
// ends before its release. On a tensor that is the output of one module and the input of the
// next, one hook ends the spans that end there before it starts those that start there.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace zt::observe {

class ModuleTracer {
 public:
  // Registers the post-hooks on every module of `model`, which must outlive this.
  explicit ModuleTracer(nn::Module& model);
  ~ModuleTracer();
  ModuleTracer(const ModuleTracer&) = delete;
  ModuleTracer& operator=(const ModuleTracer&) = delete;

  void register_pre_hooks();
  // Ends the backward spans still open (those of modules whose inputs need no gradient).
  void end_backward();

  struct BackwardSpan {
    std::string name;
    double start_us = -1;
    bool ended = false;
  };
  // What the gradient reaching one tensor ends and starts.
  struct TensorEvents {
    std::vector<std::shared_ptr<BackwardSpan>> ends, starts;
  };

 private:
  struct Traced {
    nn::Module* module;
    std::string name;  // "conv1 (Conv2d)"
    std::vector<double> forward_starts;
    std::vector<int64_t> hook_handles;
  };
  void leave(Traced& traced, const nn::TensorList& inputs, const nn::TensorList& outputs);
  TensorEvents& events_of(const Tensor& tensor);

  std::vector<std::unique_ptr<Traced>> traced_;
  std::vector<std::shared_ptr<BackwardSpan>> open_backward_;
  // The tensors of the current forward that carry a hook, by identity; each held until
  // backward ends, so that no other tensor takes its address (and its entry) meanwhile.
  struct Hooked {
    Tensor tensor;
    std::shared_ptr<TensorEvents> events;
  };
  std::unordered_map<const void*, Hooked> hooked_tensors_;
};

}  // namespace zt::observe
