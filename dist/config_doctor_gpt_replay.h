// The GPT replay's pieces shared by the whole model's replay (dist/config_doctor_gpt.cpp) and
// one pipeline stage's (dist/config_doctor_gpt_stage.cpp): a ledger of the `activation` bytes,
// the sizes of one micro-batch's tensors, and one GPT-2 or Llama layer's allocations.
#pragma once

#include <algorithm>
#include <cstdint>

#include "dist/config_doctor_gpt.h"

namespace zt::dist::gpt_replay {

struct Ledger {
  int64_t live = 0, peak = 0;
  void alloc(int64_t bytes) {
    live += bytes;
    peak = std::max(peak, live);
  }
  void release(int64_t bytes) { live -= bytes; }
};

// Bytes of the tensors one micro-batch makes, and of the weights' gradients.
struct Sizes {
  int64_t e = 4;       // the model's element bytes
  int64_t hidden = 0;  // [rows, n_embd]
  int64_t split = 0;   // [rows, n_embd / tp]: this tensor rank's heads (the hidden at tp 1)
  int64_t tp = 1;      // tensor-parallel ranks: split weights hold 1/tp of their elements
  int64_t kv = 0;      // [rows, kv_heads * head_dim]
  int64_t wide = 0;    // [rows, intermediate]
  int64_t stats = 0;   // one f32 per row (a norm's mean or reciprocal deviation)
  int64_t lse = 0;     // attention's f32 log-sum-exp, a row per head
  int64_t logits = 0;  // [rows, vocab] in the model's dtype
  int64_t embd = 0, intermediate = 0, kv_width = 0, vocab = 0;
  bool bias = true;
  bool tied = true;
  bool grouped = false;  // fewer key and value heads than query heads
};

// A GPT-2 layer's forward, keeping what its backward reads, and its backward, `input_bytes`
// being what its first norm frees beyond its own saved tensors (the layer's input, and
// checkpointed, the checkpoint's output and saved input), `grad_output` the activation bytes
// of the gradient coming in (none where it is a checkpoint's input gradient, a leaf's .grad).
void gpt2_forward(Ledger& l, const Sizes& s);
void gpt2_backward(Ledger& l, const Sizes& s, int64_t input_bytes, int64_t grad_output);
// The same for a Llama layer (its rotary tables are the caller's).
void llama_forward(Ledger& l, const Sizes& s);
void llama_backward(Ledger& l, const Sizes& s, int64_t input_bytes, int64_t grad_output);
// A checkpointed layer's first forward, without autograd: only its output stays.
void gpt2_forward_no_grad(Ledger& l, const Sizes& s);
void llama_forward_no_grad(Ledger& l, const Sizes& s);
// The sizes of `micro_batch` samples of `shape` in elements of `e` bytes on one of `tp` ranks.
Sizes make_sizes(const GptActivationShape& shape, int64_t micro_batch, int64_t e, int64_t tp);

}  // namespace zt::dist::gpt_replay
