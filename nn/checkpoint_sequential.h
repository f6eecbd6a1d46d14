// checkpoint_sequential: activation checkpointing applied to a Sequential, as PyTorch's
// torch.utils.checkpoint.checkpoint_sequential. It lives in nn/ because it walks an nn
// container; the checkpoint node itself is autograd's (autograd/checkpoint.h).
// Invariant: gradients equal those of calling the Sequential directly, bit for bit.
#pragma once

#include <cstdint>

#include "nn/containers.h"

namespace zt::nn {

// Splits seq's layers into `segments` consecutive groups of size()/segments layers (the last
// takes the remainder) and checkpoints each group but the last, which runs normally. Each
// layer is called through its operator(), so module hooks fire (in recomputation too); seq's
// own hooks do not. Each layer's outputs are the next one's inputs.
TensorList checkpoint_sequential(Sequential& seq, int64_t segments, const TensorList& inputs);
Tensor checkpoint_sequential(Sequential& seq, int64_t segments, const Tensor& input);

}  // namespace zt::nn
