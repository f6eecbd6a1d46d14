// The config doctor's activation prediction for the GPT (models/gpt.h, GPT-2's and Llama's
// layouts): the allocations of one forward and backward replayed layer by layer, as the
// autograd graph makes and frees them, to find the peak of the allocator's `activation` bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

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
// the device, or with `cpu_checkpointing` wait in host memory (activation_offload, not counted
// here) and come back one layer at a time for the re-run.
// Dropout is taken as 0 (its masks are not counted). Block-sparse attention over whole blocks
// keeps what dense attention keeps, so the same replay serves it.
int64_t predict_gpt_activation_peak(const GptActivationShape& shape, int64_t micro_batch,
                                    int64_t element_bytes, bool checkpointed,
                                    bool cpu_checkpointing = false);

// One pipeline stage's part of the GPT (GPT-2's or Llama's layout) on one tensor rank, for one
// model chunk, as pipeline/gpt_layers.h builds it: the blocks [first_block, end_block), the
// first virtual stage's embeddings, the last one's final norm, head and loss (the logits cast
// to f32 inside the stage, so counted).
struct GptStagePart {
  int64_t first_block = 0, end_block = 0;
  bool embedding = false, head = false;
  int64_t tensor = 1;      // tensor-parallel ranks: heads, MLP width and vocabulary split by it
  bool tied_here = false;  // the head's weight is this stage's embedding's (one tensor)
};

// The `activation` bytes of one stage replayed in the pipeline's instruction order: each
// forward keeps its micro-batch's saved tensors until that micro-batch's backward frees them
// (1F1B holds min(m, stages - stage) at once); with several model chunks (the interleaved
// schedule) each chunk's passes run its own part. With the pipeline's activation checkpoints
// each segment keeps its input and re-runs in backward (no tensor axis).
class GptStageReplay {
 public:
  // `parts`: the stage's part of each model chunk, by chunk.
  // `checkpoint_interval`: the pipeline's activation checkpoints, every this many layers of a
  // chunk (embedding, blocks, final norm, head) one segment; 0: none. A segment must hold the
  // final norm and the head together.
  GptStageReplay(const GptActivationShape& shape, const std::vector<GptStagePart>& parts,
                 int64_t micro_batch, int64_t element_bytes, int64_t checkpoint_interval = 0);
  ~GptStageReplay();
  void forward(int chunk = 0);   // one micro-batch's forward pass through `chunk`
  void backward(int chunk = 0);  // its backward pass (the chunk's oldest in flight)
  void hold(int64_t bytes);      // a buffer outside the passes (a received gradient)
  void release(int64_t bytes);   // and its end
  int64_t hidden_bytes() const;  // one micro-batch's [rows, n_embd] in the model's dtype
  int64_t peak() const;

 private:
  struct State;
  void forward_checkpointed(int chunk);
  void backward_checkpointed(int chunk);
  std::unique_ptr<State> state_;
};

}  // namespace zt::dist
