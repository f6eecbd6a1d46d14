// Activation checkpointing of a decoder stack, layer by layer (Hugging Face's
// gradient_checkpointing, Megatron's --checkpoint-activations): each layer keeps only its
// input and re-runs in backward. Under ZeRO stage 3 the re-run gathers the layer's weights
// again, so a step holds one layer's activations next to the checkpoints, not all of them.
#pragma once

#include "nn/module.h"

namespace zt::models {

// layer(inputs): inputs[0] is the hidden state, then the layer's other inputs (rotary tables,
// the cached keys and values, None where absent); the result is (hidden, keys, values). With
// `checkpointed`, and when no input is a cache (generation never checkpoints), the layer runs
// under zt::checkpoint and only the hidden state comes back (keys and values None: training
// does not return them).
nn::TensorList run_decoder_layer(nn::Module& layer, const nn::TensorList& inputs,
                                 bool checkpointed);

}  // namespace zt::models
