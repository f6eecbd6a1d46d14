// See dist/config_doctor_gpt.h (GptStageReplay): one pipeline stage's layers of the GPT-2
// layout replayed micro-batch by micro-batch, in the order the pipeline engine runs them, with
// the last stage's head and loss as pipeline/gpt_layers.h takes them.
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
void pipeline_head_forward(Ledger& l, const Sizes& s) {
  const int64_t f32_logits = s.logits / s.e * 4, row = s.stats;
  if (s.tp > 1) {
    // The vocabulary-parallel loss over this rank's logits (measured): five [rows, V/tp] f32
    // tensors and four of one f32 per row at its peak, one of each freed when it returns.
    l.alloc(s.hidden + 2 * s.stats + s.logits + (s.e == 4 ? 0 : f32_logits));
    l.alloc(4 * f32_logits + 4 * row);
    l.release(f32_logits + row);
    return;
  }
  l.alloc(s.hidden + 2 * s.stats + s.logits + (s.e == 4 ? 0 : f32_logits) + row);
  l.alloc(f32_logits);
  l.release(f32_logits);
}

// Its backward: the logits' f32 gradient (cast to the model's dtype), the loss's saved
// tensors gone; the head's input and weight gradients (a weight tied on this stage held
// until the embedding's backward adds its own); then the norm's, which frees its saved
// tensors and the last block's output.
void pipeline_head_backward(Ledger& l, const Sizes& s, bool tied_here) {
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
  l.release(params + 2 * s.hidden + 2 * s.stats + s.hidden);
}

}  // namespace

struct GptStageReplay::State {
  GptActivationShape shape;
  GptStagePart part;
  Sizes s;
  Ledger l;
  std::deque<int64_t> kept;  // what each micro-batch in flight keeps, oldest first
};

GptStageReplay::GptStageReplay(const GptActivationShape& shape, const GptStagePart& part,
                               int64_t micro_batch, int64_t element_bytes)
    : state_(std::make_unique<State>(
          State{.shape = shape,
                .part = part,
                .s = make_sizes(shape, micro_batch, element_bytes, part.tensor)})) {}

GptStageReplay::~GptStageReplay() = default;

void GptStageReplay::forward() {
  State& st = *state_;
  Ledger& l = st.l;
  const Sizes& s = st.s;
  const int64_t before = l.live, h = s.hidden;
  // The embeddings: the position table's rows, the token rows, their sum; vocabulary-parallel
  // (measured), the local ids (i64), a row mask, the masked rows and their sum over the group.
  const int64_t rows = s.stats / 4;
  if (st.part.embedding)
    l.alloc(st.shape.tokens * st.shape.embd * s.e + 2 * h +
            (s.tp > 1 ? h + rows * 8 + rows * 4 : 0));
  // Measured, not derived: a stage whose input was received holds one more hidden-sized
  // tensor through its first block's forward until that block's backward.
  if (!st.part.embedding && st.part.end_block > st.part.first_block) l.alloc(h);
  for (int64_t block = st.part.first_block; block < st.part.end_block; ++block) {
    gpt2_forward(l, s);
    l.release(3 * s.split);  // a layer returns no keys or values: the fused q/k/v goes
  }
  if (st.part.head) pipeline_head_forward(l, s);
  st.kept.push_back(l.live - before);
}

void GptStageReplay::backward() {
  State& st = *state_;
  Ledger& l = st.l;
  const Sizes& s = st.s;
  const int64_t h = s.hidden;
  const int64_t end = l.live - st.kept.front();  // what stays once this micro-batch is done
  if (st.part.head) pipeline_head_backward(l, s, st.part.tied_here);
  for (int64_t block = st.part.end_block - 1; block >= st.part.first_block; --block) {
    // Its first norm frees its input: the previous block's output, an activation, or for the
    // stage's first block the tensor received from the previous stage, which is not one.
    const bool received = block == st.part.first_block && !st.part.embedding;
    gpt2_backward(l, s, received ? 0 : h);
  }
  l.live = end;
  st.kept.pop_front();
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
