// The config doctor's activation prediction for the GPT (models/gpt.h, GPT-2's and Llama's
// layouts): the allocations of one forward and backward replayed layer by layer, as the
// autograd graph makes and frees them, to find the peak of the allocator's `activation` bytes.
#pragma once

#include <cstdint>

#include "dist/config_doctor_activations.h"
#include "models/gpt_config.h"

namespace zt::dist {

// What the activations depend on: the model's sizes and the tokens of a training window.
struct GptActivationShape {
  bool llama = false;  // Llama's layer (RMSNorm, rotary, SwiGLU) instead of GPT-2's
  int64_t vocab = 0;
  int64_t tokens = 0;  // positions per sample (gpt_train's block_size)
  int64_t layers = 0, heads = 0, kv_heads = 0, embd = 0, intermediate = 0;
  bool bias = true;  // GPT-2's linear biases (their gradients are row sums in backward)
  bool tied = true;  // the head's weight is the token embedding's
};

// The shape of a model built from `config`, trained on windows of its block_size.
GptActivationShape gpt_activation_shape(const models::GPTConfig& config);

// The most bytes the `activation` tag holds during one forward and backward of `micro_batch`
// samples whose loss is taken as gpt_train takes it (cross entropy of the logits cast to f32,
// outside the engine's forward, so that cast is not an activation but its gradient is). With
// checkpointing every layer keeps only its input and re-runs in backward; its inputs stay on
// the device (cpu_checkpointing is not told apart: the prediction is then an upper bound).
// Dropout is taken as 0 (its masks are not counted). Block-sparse attention over whole blocks
// keeps what dense attention keeps, so the same replay serves it.
int64_t predict_gpt_activation_peak(const GptActivationShape& shape, int64_t micro_batch,
                                    int64_t element_bytes, bool checkpointed);

}  // namespace zt::dist
