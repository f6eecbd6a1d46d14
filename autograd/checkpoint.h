// Activation checkpointing as one node of the graph: checkpoint(fn, inputs) runs fn without
// recording, keeps only its inputs and the default generator's (seed, offset), and in backward
// re-runs fn with recording on and back-propagates through the recomputed piece. Invariants:
// gradients equal those of running fn directly, bit for bit; the RNG stream is left as if fn
// had run once.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace zt {

using CheckpointFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;

// Runs fn(inputs) keeping none of its intermediate activations. With grad mode on, the outputs
// are made by one checkpoint node whose next edges are the inputs that require grad; its
// backward recomputes fn and runs a nested backward, so parameters that fn captures (leaves)
// get their gradients and grad-ready hooks there. fn must be a pure function of its inputs,
// of leaves it captures and of the default generator: a captured non-leaf that requires grad
// must be passed as an input (backward throws otherwise). The node is recorded even when no
// input requires grad, since fn may capture parameters.
// Where the saved inputs are kept (aliases, host copies under activation_offload, a contiguous
// buffer) and whether recomputation is profiled follow checkpointing_options() as they are when
// the checkpoint is made and recomputed (autograd/checkpointing_options.h).
std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs);
Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& input);

// checkpoint_sequential, which walks an nn::Sequential, is in nn/checkpoint_sequential.h.

}  // namespace zt
