// See dist/config_doctor_gpt.h (GptStageReplay): one pipeline stage's layers of the GPT-2 or
// Llama layout replayed micro-batch by micro-batch and chunk by chunk, in the order the
// pipeline engine runs them, with the last stage's head and loss as pipeline/gpt_layers.h
// takes them.
#include <deque>
#include <memory>

#include "dist/config_doctor_gpt.h"
#include "dist/config_doctor_gpt_replay.h"

namespace zt::dist {

using namespace gpt_replay;

namespace {

// The last stage's final norm, head and loss (pipeline/gpt_layers.h: the logits cast to f32
// inside the pass): the norm's output and statistics, the logits (a 2-byte model's f32 copy
// too), one f32 per row and, while the loss runs, its f32 exponentials.
void pipeline_head_forward(Ledger& l, const Sizes& s, int64_t norm_stats) {
  const int64_t f32_logits = s.logits / s.e * 4, row = s.stats;
  if (s.tp > 1) {
    // The vocabulary-parallel loss over this rank's logits (measured): five [rows, V/tp] f32
    // tensors and four of one f32 per row at its peak, one of each freed when it returns.
    l.alloc(s.hidden + norm_stats + s.logits + (s.e == 4 ? 0 : f32_logits));
    l.alloc(4 * f32_logits + 4 * row);
    l.release(f32_logits + row);
    return;
  }
  l.alloc(s.hidden + norm_stats + s.logits + (s.e == 4 ? 0 : f32_logits) + row);
  l.alloc(f32_logits);
  l.release(f32_logits);
}

// Its backward: the logits' f32 gradient (cast to the model's dtype), the loss's saved
// tensors gone; the head's input and weight gradients (a weight tied on this stage held
// until the embedding's backward adds its own); then the norm's, which frees its saved
// tensors and the last block's output.
void pipeline_head_backward(Ledger& l, const Sizes& s, bool tied_here, int64_t norm_stats) {
  const int64_t f32_logits = s.logits / s.e * 4, weight = s.vocab * s.embd * s.e;
  l.alloc(f32_logits);
  int64_t grad_logits = f32_logits;
  if (s.e != 4) {
    l.alloc(s.logits);
    l.release(2 * f32_logits);
    grad_logits = s.logits;
  }
  l.release(s.logits + s.stats);
  l.alloc(s.hidden + weight);
  l.release(s.hidden + (tied_here ? 0 : weight) + grad_logits);
  const int64_t params = (s.bias ? 2 : 1) * s.embd * s.e;
  l.alloc(s.hidden + params);
  l.release(params + 2 * s.hidden + norm_stats + s.hidden);
}

}  // namespace

struct GptStageReplay::State {
  GptActivationShape shape;
  std::vector<GptStagePart> parts;  // by chunk
  Sizes s;
  Ledger l;
  std::vector<std::deque<int64_t>> kept;  // by chunk, what each micro-batch in flight keeps
};

GptStageReplay::GptStageReplay(const GptActivationShape& shape,
                               const std::vector<GptStagePart>& parts, int64_t micro_batch,
                               int64_t element_bytes)
    : state_(std::make_unique<State>(
          State{.shape = shape,
                .parts = parts,
                .s = make_sizes(shape, micro_batch, element_bytes, parts.at(0).tensor),
                .kept = std::vector<std::deque<int64_t>>(parts.size())})) {}

GptStageReplay::~GptStageReplay() = default;

namespace {

// Llama's rotary tables, made by each pipeline layer for its own positions (f32 angles, then
// cos and sin in the model's dtype, kept by the rotations until the layer's backward).
int64_t rotary_tables(Ledger& l, const GptActivationShape& shape, const Sizes& s) {
  const int64_t head_dim = shape.embd / shape.heads, kept = shape.tokens * head_dim / 2 * s.e;
  for (int table = 0; table < 2; ++table) {
    l.alloc(shape.tokens * head_dim * 4 + kept);
    l.release(shape.tokens * head_dim * 4);
  }
  return 2 * kept;
}

}  // namespace

void GptStageReplay::forward(int chunk) {
  State& st = *state_;
  const GptStagePart& part = st.parts.at(size_t(chunk));
  Ledger& l = st.l;
  const Sizes& s = st.s;
  const bool llama = st.shape.llama;
  const int64_t before = l.live, h = s.hidden;
  // The embeddings: Llama's token rows; GPT-2's position table's rows, the token rows, their
  // sum; vocabulary-parallel (measured), the local ids (i64), a row mask, the masked rows and
  // their sum over the group.
  const int64_t rows = s.stats / 4;
  if (part.embedding)
    l.alloc(llama ? h
                  : st.shape.tokens * st.shape.embd * s.e + 2 * h +
                        (s.tp > 1 ? h + rows * 8 + rows * 4 : 0));
  // Measured, not derived: a stage whose input was received holds one more hidden-sized
  // tensor through its first block's forward until that block's backward.
  if (!part.embedding && part.end_block > part.first_block) l.alloc(h);
  // A layer returns no keys or values: what holds them goes when it returns (GPT-2's fused
  // q/k/v; Llama's value projection, grouped its rotated keys too).
  const int64_t held_by_views = llama ? (s.grouped ? 2 : 1) * s.kv : 3 * s.split;
  for (int64_t block = part.first_block; block < part.end_block; ++block) {
    if (llama) rotary_tables(l, st.shape, s);
    (llama ? llama_forward : gpt2_forward)(l, s);
    l.release(held_by_views);
  }
  if (part.head) pipeline_head_forward(l, s, (llama ? 1 : 2) * s.stats);
  st.kept[size_t(chunk)].push_back(l.live - before);
}

void GptStageReplay::backward(int chunk) {
  State& st = *state_;
  const GptStagePart& part = st.parts.at(size_t(chunk));
  std::deque<int64_t>& kept = st.kept[size_t(chunk)];
  Ledger& l = st.l;
  const Sizes& s = st.s;
  const bool llama = st.shape.llama;
  const int64_t h = s.hidden;
  const int64_t end = l.live - kept.front();  // what stays once this micro-batch is done
  if (part.head) pipeline_head_backward(l, s, part.tied_here, (llama ? 1 : 2) * s.stats);
  const int64_t head_dim = st.shape.embd / st.shape.heads;
  for (int64_t block = part.end_block - 1; block >= part.first_block; --block) {
    // Its first norm frees its input: the previous block's output, an activation, or for the
    // stage's first block the tensor received from the previous stage, which is not one.
    const bool received = block == part.first_block && !part.embedding;
    (llama ? llama_backward : gpt2_backward)(l, s, received ? 0 : h);
    if (llama) l.release(st.shape.tokens * head_dim * s.e);  // its rotary tables
  }
  l.live = end;
  kept.pop_front();
}

void GptStageReplay::hold(int64_t bytes) {
  state_->l.alloc(bytes);
}
void GptStageReplay::release(int64_t bytes) {
  state_->l.release(bytes);
}
int64_t GptStageReplay::hidden_bytes() const {
  return state_->s.hidden;
}
int64_t GptStageReplay::peak() const {
  return state_->l.peak;
}

}  // namespace zt::dist
