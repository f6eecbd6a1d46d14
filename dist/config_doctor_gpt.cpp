// See dist/config_doctor_gpt.h. The replay follows the allocator's measured order for one
// layer: the forward keeps every op's output (each is some backward's saved input, or a view a
// later op saves), the keys and values views returned for a KV cache hold the fused q/k/v
// projection until the model's forward returns, and each op's backward holds its input's
// gradient, its weight's gradient (whole, until the engine takes it) and its scratch at once.
#include "dist/config_doctor_gpt.h"

#include <algorithm>

#include "dist/config_doctor_gpt_replay.h"

namespace zt::dist {

namespace gpt_replay {

// A bias's gradient: the row sum of the output's gradient (in f32 a halving tree whose two
// largest levels coexist; in a 2-byte dtype over a copy of the gradient). The sum stays.
void bias_row_sums(Ledger& l, const Sizes& s, int64_t grad_output, int64_t bias) {
  if (s.e == 4) {
    l.alloc(grad_output / 2);
    l.alloc(grad_output / 4);
    l.release(grad_output / 2 + grad_output / 4);
    l.alloc(bias);
  } else {
    l.alloc(bias);
    l.alloc(grad_output);
    l.release(grad_output);
  }
}

// A linear layer's backward: its input's gradient and its weight's, and with a bias
// (`out_features` > 0) its row sums; then its saved input goes.
void linear_backward(Ledger& l, const Sizes& s, int64_t grad_input, int64_t weight,
                     int64_t grad_output, int64_t out_features, int64_t saved_input) {
  l.alloc(grad_input);
  l.alloc(weight);
  const int64_t bias = s.bias ? out_features * s.e : 0;
  if (bias > 0) bias_row_sums(l, s, grad_output, bias);
  l.release(saved_input + bias + weight);
}

// A residual add's backward frees the branch output it saved (the add keeps both inputs),
// before the branch's c_proj runs its backward. A row-parallel c_proj adds its bias after the
// sum over the tensor group, in an add of its own: that add's backward takes the bias's row
// sums and frees the sum first, and the linear's own backward has no bias (measured).
void branch_output_backward(Ledger& l, const Sizes& s) {
  const int64_t h = s.hidden;
  l.release(h);
  if (s.tp == 1 || !s.bias) return;
  const int64_t bias = s.embd * s.e;
  bias_row_sums(l, s, h, bias);
  l.release(bias + h);
}

// A norm's backward and the residual sum after it: `saved` is what it frees of the layer's
// kept bytes (statistics, its input, the branch output the residual add made); the residual
// gradient it adds to goes too (`residual_grad` bytes of activations).
void norm_backward(Ledger& l, const Sizes& s, int64_t saved, int64_t residual_grad) {
  const int64_t h = s.hidden, params = (s.bias ? 2 : 1) * s.embd * s.e;
  l.alloc(h + params);
  l.alloc(h);  // the residual gradient plus the branch's
  l.release(saved + h + residual_grad + params);
}

// Attention's backward: the output gradient made contiguous and dq, dk, dv (in f32 when the
// model is not, then cast); grouped, dk and dv come per query head and are summed per group;
// then the saved q, `k`, `v` (expanded to every query head when grouped), the output, the
// log-sum-exp and the gradient coming in go.
void attention_backward(Ledger& l, const Sizes& s, int64_t k, int64_t v) {
  const int64_t h = s.split, widen = 4 / s.e, grads = h + k + v;
  l.alloc(widen * grads);
  l.alloc(h);
  if (widen > 1) {
    l.alloc(grads);
    l.release(widen * grads);
  }
  l.release(h);
  if (s.grouped) {
    for (int i = 0; i < 2; ++i) {
      l.alloc(s.kv + h);
      l.release(h);
    }
    l.release(k + v);
  }
  l.release(s.lse + h + k + v + h + h);
}

// ---- GPT-2 -------------------------------------------------------------------------------

void gpt2_forward(Ledger& l, const Sizes& s) {
  const int64_t h = s.hidden, a = s.split;
  // A row-parallel c_proj (tensor-parallel) makes its sum over the tensor group and then adds
  // its bias: one more hidden-sized output each.
  const int64_t row_parallel_bias = s.tp > 1 && s.bias ? h : 0;
  l.alloc(h + 2 * s.stats);                // ln_1
  l.alloc(3 * a);                          // c_attn, held by the keys and values views
  l.alloc(4 * a + s.lse);                  // q, k, v made contiguous, the output, the lse
  l.alloc(a + 2 * h + row_parallel_bias);  // heads merged, c_proj, the residual add
  l.alloc(h + 2 * s.stats);                // ln_2
  l.alloc(2 * s.wide);                     // c_fc, gelu
  l.alloc(2 * h + row_parallel_bias);      // c_proj, the residual add
}

// A checkpointed layer's first forward, without autograd: only its output stays.
void gpt2_forward_no_grad(Ledger& l, const Sizes& s) {
  const int64_t h = s.hidden, a = s.split, w = s.wide;
  l.alloc(h + 2 * s.stats);
  l.release(2 * s.stats);
  l.alloc(3 * a + 4 * a + s.lse);
  l.release(s.lse + 3 * a);
  l.alloc(a + h);  // merged, c_proj
  l.release(2 * a + h);
  l.alloc(2 * h + 2 * s.stats);  // the residual add, ln_2
  l.release(2 * s.stats);
  l.alloc(2 * w);
  l.alloc(h);
  l.release(2 * w);
  l.alloc(h);                // the layer's output
  l.release(4 * h + 3 * a);  // all but the output (c_attn last, with the views)
}

// `input_bytes`: what the layer's first norm frees beyond its statistics and its own saved
// tensors: the layer's input (and, checkpointed, the checkpoint's output and saved input).
void gpt2_backward(Ledger& l, const Sizes& s, int64_t input_bytes, int64_t grad_output) {
  const int64_t h = s.hidden, a = s.split, w = s.wide, C = s.embd, F = s.intermediate;
  const int64_t tp = s.tp;
  // Row-parallel layers (the c_proj's) split their weight's rows, not their bias.
  // Row-parallel c_proj's bias (tensor-parallel) is added by branch_output_backward's add.
  const int64_t c_proj_bias = tp > 1 ? 0 : C;
  branch_output_backward(l, s);
  linear_backward(l, s, w, F / tp * C * s.e, h, c_proj_bias, w);  // mlp.c_proj, gelu's output
  l.alloc(w);                                                     // gelu
  l.release(2 * w);
  linear_backward(l, s, h, C * F / tp * s.e, w, F / tp, h);  // mlp.c_fc, ln_2's output saved
  l.release(w);
  norm_backward(l, s, 2 * s.stats + h, grad_output);
  branch_output_backward(l, s);
  linear_backward(l, s, a, C / tp * C * s.e, h, c_proj_bias, a);  // attn.c_proj, the merged heads
  attention_backward(l, s, a, a);
  for (int i = 0; i < 3; ++i) {  // dq, dk, dv made contiguous through the heads' transpose
    l.alloc(a);
    l.release(a);
  }
  // The split's backward: each gradient padded to the fused width and summed into the last.
  l.alloc(3 * a);
  l.release(a);
  for (int i = 0; i < 2; ++i) {
    l.alloc(6 * a);
    l.release(6 * a + a);
  }
  // attn.c_attn, ln_1's output saved.
  linear_backward(l, s, h, 3 * C / tp * C * s.e, 3 * a, 3 * C / tp, h);
  l.release(3 * a);
  norm_backward(l, s, 2 * s.stats + h + input_bytes, h);
}

// ---- Llama -------------------------------------------------------------------------------

void llama_forward(Ledger& l, const Sizes& s) {
  const int64_t h = s.hidden, kv = s.kv;
  l.alloc(h + s.stats);  // input_layernorm
  // q_proj then its rotation (a scratch copy, then the rotated output; the projection goes).
  l.alloc(3 * h);
  l.release(2 * h);
  l.alloc(3 * kv);
  l.release(2 * kv);
  l.alloc(kv);  // v_proj, held by the values view (grouped, the rotated k is too)
  // v made contiguous (grouped: k and v expanded to every query head), the output, the
  // log-sum-exp, the heads merged.
  l.alloc((s.grouped ? 2 * h : kv) + h + s.lse + h);
  l.alloc(2 * h + h + s.stats);  // o_proj, the residual add, post_attention_layernorm
  l.alloc(4 * s.wide);           // gate, silu, up, their product
  l.alloc(2 * h);                // down_proj, the residual add
}

void llama_forward_no_grad(Ledger& l, const Sizes& s) {
  const int64_t h = s.hidden, kv = s.kv, w = s.wide;
  l.alloc(h + s.stats + 3 * h);
  l.release(s.stats + 2 * h);
  l.alloc(3 * kv);
  l.release(2 * kv);
  l.alloc(2 * kv + h + s.lse);
  l.release(s.lse + 3 * kv + h + h);  // q, k, v and the normed input
  l.alloc(h + h);                     // merged, o_proj
  l.release(2 * h);
  l.alloc(2 * h);  // the residual add, post_attention_layernorm
  l.alloc(2 * w);
  l.release(w);
  l.alloc(2 * w);
  l.release(3 * w);
  l.alloc(2 * h);  // down_proj, the layer's output
  l.release(3 * h + h);
}

void llama_backward(Ledger& l, const Sizes& s, int64_t input_bytes, int64_t grad_output) {
  const int64_t h = s.hidden, kv = s.kv, w = s.wide, C = s.embd, F = s.intermediate;
  linear_backward(l, s, w, F * C * s.e, h, C, w);  // down_proj, the product saved
  l.alloc(2 * w);                                  // the product's backward
  l.release(3 * w);
  l.alloc(w);  // silu
  l.release(2 * w);
  linear_backward(l, s, h, C * F * s.e, w, F, 0);  // up_proj
  l.release(w);
  linear_backward(l, s, h, C * F * s.e, w, F, 0);  // gate_proj
  l.alloc(h);                                      // the two input gradients summed
  l.release(3 * h + w + h);  // the parts, the gate's output gradient, the norm's saved output
  norm_backward(l, s, s.stats + 2 * h, grad_output);
  linear_backward(l, s, h, C * C * s.e, h, C, h);  // o_proj, the merged heads saved
  attention_backward(l, s, s.grouped ? h : kv, s.grouped ? h : kv);
  const int64_t kv_weight = s.kv_width * C * s.e;
  l.alloc(kv);  // dv made contiguous
  l.release(kv);
  linear_backward(l, s, h, kv_weight, kv, 0, kv);  // v_proj
  l.alloc(2 * kv);                                 // dk rotated back, made contiguous
  l.release(2 * kv);
  linear_backward(l, s, h, kv_weight, kv, 0, 0);  // k_proj
  l.alloc(h);  // the v and k input gradients summed, the parts gone
  l.release(3 * h);
  l.alloc(2 * h);  // dq rotated back, made contiguous
  l.release(2 * h);
  linear_backward(l, s, h, C * C * s.e, h, 0, 0);  // q_proj
  l.alloc(h);
  l.release(3 * h + h + h);  // the gradients, dq, the normed input
  norm_backward(l, s, s.stats + 2 * h + input_bytes, h);
}

// ---- the whole model ---------------------------------------------------------------------

// The loss's gradient, cast to the model's dtype, through the head and the final norm (no
// residual sum after it).
void head_backward(Ledger& l, const Sizes& s, int64_t final_norm_saved) {
  const int64_t f32_logits = s.logits / s.e * 4;
  l.alloc(f32_logits);
  if (s.e != 4) {
    l.alloc(s.logits);
    l.release(f32_logits);
  }
  // lm_head: the hidden gradient and the weight's; a tied weight's stays until the token
  // embedding's backward adds its own.
  const int64_t weight = s.vocab * s.embd * s.e;
  l.alloc(s.hidden + weight);
  l.release(s.hidden + (s.tied ? 0 : weight) + s.logits);
  const int64_t params = (s.bias ? 2 : 1) * s.embd * s.e;
  l.alloc(s.hidden + params);
  l.release(final_norm_saved + params);
}

Sizes make_sizes(const GptActivationShape& shape, int64_t micro_batch, int64_t e, int64_t tp) {
  const int64_t rows = micro_batch * shape.tokens, head_dim = shape.embd / shape.heads;
  return {.e = e,
          .hidden = rows * shape.embd * e,
          .split = rows * shape.embd / tp * e,
          .tp = tp,
          .kv = rows * shape.kv_heads * head_dim * e,
          .wide = rows * shape.intermediate / tp * e,
          .stats = rows * 4,
          .lse = rows * shape.heads / tp * 4,
          .logits = rows * shape.vocab / tp * e,
          .embd = shape.embd,
          .intermediate = shape.intermediate,
          .kv_width = shape.kv_heads * head_dim,
          .vocab = shape.vocab / tp,
          .bias = shape.bias && !shape.llama,
          .tied = shape.tied,
          .grouped = shape.kv_heads < shape.heads};
}

}  // namespace gpt_replay

using namespace gpt_replay;

GptActivationShape gpt_activation_shape(const models::GPTConfig& config) {
  return {.llama = config.architecture == models::Architecture::llama,
          .vocab = config.vocab_size,
          .tokens = config.block_size,
          .layers = config.n_layer,
          .heads = config.n_head,
          .kv_heads = config.resolved_n_kv_head(),
          .embd = config.n_embd,
          .intermediate = config.resolved_intermediate_size(),
          .bias = config.bias,
          .tied = config.tie_word_embeddings};
}

int64_t predict_gpt_activation_peak(const GptActivationShape& shape, int64_t micro_batch,
                                    int64_t element_bytes, bool checkpointed,
                                    bool cpu_checkpointing) {
  // cpu_checkpointing: each checkpoint copies its input to the host, where the device's goes
  // once the layer's forward has run, and restores it to the device for the re-run.
  const bool offloaded = checkpointed && cpu_checkpointing;
  const int64_t e = element_bytes, head_dim = shape.embd / shape.heads;
  const Sizes s = make_sizes(shape, micro_batch, element_bytes, 1);
  Ledger l;
  const int64_t h = s.hidden;
  // Embeddings: GPT-2's token and position outputs stay until the end of backward; Llama's
  // rotary tables (f32 angles, then cos and sin) likewise.
  if (shape.llama) {
    l.alloc(h);
    for (int table = 0; table < 2; ++table) {
      l.alloc(shape.tokens * head_dim * 4 + shape.tokens * head_dim / 2 * e);
      l.release(shape.tokens * head_dim * 4);
    }
  } else {
    l.alloc(shape.tokens * shape.embd * e + 2 * h);
  }
  auto forward = shape.llama ? llama_forward : gpt2_forward;
  auto backward = shape.llama ? llama_backward : gpt2_backward;
  const int64_t held_by_views =
      shape.llama ? (s.grouped ? 2 : 1) * s.kv : 3 * h;  // per layer, until forward returns
  for (int64_t layer = 0; layer < shape.layers; ++layer) {
    if (checkpointed) {
      (shape.llama ? llama_forward_no_grad : gpt2_forward_no_grad)(l, s);
      if (offloaded) l.release(h);
    } else {
      forward(l, s);
    }
  }
  const int64_t norm_stats = (shape.llama ? 1 : 2) * s.stats;
  l.alloc(h + norm_stats + s.logits);  // the final norm, the logits
  if (!checkpointed) l.release(shape.layers * held_by_views);
  l.release(s.logits);  // the loss reads its f32 copy (not an activation)
  // What the final norm's backward frees, as measured: its statistics and two hidden-sized
  // tensors, three without checkpoints (the last layer's output goes there; a checkpoint holds
  // it until its layer's backward).
  head_backward(l, s, norm_stats + (checkpointed ? 2 * h : 3 * h));
  for (int64_t layer = 0; layer < shape.layers; ++layer) {
    if (offloaded) l.alloc(h);  // the input restored
    if (checkpointed) {
      forward(l, s);                 // the re-run
      l.release(held_by_views + h);  // the views and the re-run's output go with the re-run
    }
    backward(l, s, checkpointed ? 3 * h : h, h);
  }
  return l.peak;
}

}  // namespace zt::dist
