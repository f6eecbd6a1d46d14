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

// The vocabulary-parallel loss over this rank's logits (measured): four [rows, V/tp] f32
// tensors and four of one f32 per row at its peak, one of each freed when it returns; the
// three of each it keeps go with its backward.
void vocab_parallel_loss_forward(Ledger& l, const Sizes& s) {
  const int64_t f32_logits = s.logits / s.e * 4, row = s.stats;
  l.alloc(4 * f32_logits + 4 * row);
  l.release(f32_logits + row);
}
int64_t vocab_parallel_loss_kept(const Sizes& s) {
  return 3 * (s.logits / s.e * 4) + 3 * s.stats;
}

// The last stage's final norm, head and loss (pipeline/gpt_layers.h: the logits cast to f32
// inside the pass): the norm's output and statistics, the logits (a 2-byte model's f32 copy
// too), one f32 per row and, while the loss runs, its f32 exponentials.
void pipeline_head_forward(Ledger& l, const Sizes& s, int64_t norm_stats) {
  const int64_t f32_logits = s.logits / s.e * 4, row = s.stats;
  if (s.tp > 1) {
    l.alloc(s.hidden + norm_stats + s.logits + (s.e == 4 ? 0 : f32_logits));
    vocab_parallel_loss_forward(l, s);
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
  int64_t interval = 0;                   // layers per activation checkpoint; 0: none
};

GptStageReplay::GptStageReplay(const GptActivationShape& shape,
                               const std::vector<GptStagePart>& parts, int64_t micro_batch,
                               int64_t element_bytes, int64_t checkpoint_interval)
    : state_(std::make_unique<State>(
          State{.shape = shape,
                .parts = parts,
                .s = make_sizes(shape, micro_batch, element_bytes, parts.at(0).tensor),
                .kept = std::vector<std::deque<int64_t>>(parts.size()),
                .interval = checkpoint_interval})) {}

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

namespace {

// What the embeddings keep: Llama's token rows; GPT-2's position table's rows, the token rows,
// their sum; vocabulary-parallel (measured), the local ids (i64), a row mask, the masked rows
// and their sum over the group.
int64_t embedding_bytes(const GptActivationShape& shape, const Sizes& s) {
  const int64_t h = s.hidden, rows = s.stats / 4;
  if (shape.llama) return h;
  return shape.tokens * shape.embd * s.e + 2 * h + (s.tp > 1 ? h + rows * 8 + rows * 4 : 0);
}

}  // namespace

void GptStageReplay::forward(int chunk) {
  if (state_->interval > 0) return forward_checkpointed(chunk);
  State& st = *state_;
  const GptStagePart& part = st.parts.at(size_t(chunk));
  Ledger& l = st.l;
  const Sizes& s = st.s;
  const bool llama = st.shape.llama;
  const int64_t before = l.live, h = s.hidden;
  if (part.embedding) l.alloc(embedding_bytes(st.shape, s));
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
  if (state_->interval > 0) return backward_checkpointed(chunk);
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
    (llama ? llama_backward : gpt2_backward)(l, s, received ? 0 : h, h);
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

// ---- the pipeline's activation checkpoints -----------------------------------------------

namespace {

// A chunk's layers as the replay takes them: the tail is the final norm and the head (two
// layers of the list, in one segment).
enum class Piece { embedding, block, tail };

// The chunk's layers cut into checkpoints of `interval` layers (pipeline/pipeline_module.h).
std::vector<std::vector<Piece>> checkpoint_segments(const GptStagePart& part, int64_t interval) {
  std::vector<Piece> pieces;
  if (part.embedding) pieces.push_back(Piece::embedding);
  for (int64_t block = part.first_block; block < part.end_block; ++block)
    pieces.push_back(Piece::block);
  if (part.head) pieces.push_back(Piece::tail);
  std::vector<std::vector<Piece>> segments;
  int64_t position = 0;
  for (Piece piece : pieces) {
    const size_t segment = size_t(position / interval);
    if (segments.size() <= segment) segments.resize(segment + 1);
    segments[segment].push_back(piece);
    position += piece == Piece::tail ? 2 : 1;
  }
  return segments;
}

}  // namespace

// Each segment runs without autograd: only its output stays, kept as the next one's input.
// The loss runs outside the checkpoints, keeping what it keeps.
void GptStageReplay::forward_checkpointed(int chunk) {
  State& st = *state_;
  const GptStagePart& part = st.parts.at(size_t(chunk));
  Ledger& l = st.l;
  const Sizes& s = st.s;
  const bool llama = st.shape.llama;
  const int64_t before = l.live, h = s.hidden, norm_stats = (llama ? 1 : 2) * s.stats;
  const int64_t f32_logits = s.logits / s.e * 4;
  // The received input's hidden-sized copy (as without checkpoints, measured), which the
  // first checkpoint keeps as its input.
  if (!part.embedding) l.alloc(h);
  for (const std::vector<Piece>& segment : checkpoint_segments(part, st.interval)) {
    for (size_t i = 0; i < segment.size(); ++i) {
      if (segment[i] == Piece::embedding) {  // only the sum stays
        const int64_t embedding = embedding_bytes(st.shape, s);
        l.alloc(embedding);
        l.release(embedding - h);
        continue;
      }
      if (segment[i] == Piece::block && llama) {
        const int64_t tables = rotary_tables(l, st.shape, s);
        llama_forward_no_grad(l, s);
        l.release(tables);
      } else if (segment[i] == Piece::block) {
        gpt2_forward_no_grad(l, s);
      } else {
        l.alloc(h + norm_stats + s.logits);
        l.release(h + norm_stats);
      }
      if (i > 0) l.release(h);  // its input, which nothing holds without autograd
    }
  }
  if (part.head && s.tp > 1) {
    // Beside the vocabulary-parallel loss's own, one more f32 per row (measured).
    l.alloc((s.e == 4 ? 0 : f32_logits) + s.stats);
    vocab_parallel_loss_forward(l, s);
  } else if (part.head) {
    l.alloc((s.e == 4 ? 0 : f32_logits) + s.stats + f32_logits);
    l.release(f32_logits);
  }
  st.kept[size_t(chunk)].push_back(l.live - before);
}

// Segment by segment from the last: its re-run with autograd (whose output goes at once),
// then the backward through its layers; what stays is its input's gradient.
void GptStageReplay::backward_checkpointed(int chunk) {
  State& st = *state_;
  const GptStagePart& part = st.parts.at(size_t(chunk));
  Ledger& l = st.l;
  const Sizes& s = st.s;
  const bool llama = st.shape.llama;
  const int64_t h = s.hidden, norm_stats = (llama ? 1 : 2) * s.stats;
  const int64_t f32_logits = s.logits / s.e * 4;
  const int64_t head_dim = st.shape.embd / st.shape.heads;
  const int64_t end = l.live - st.kept[size_t(chunk)].front();
  // The activation bytes of the gradient coming into the segment that the backward frees:
  // none for the gradient received from the next stage, which the engine holds until the
  // pass is done (the caller's).
  int64_t grad_out = 0;
  if (part.head) {  // the loss's backward: the logits' f32 gradient, cast; then nothing holds
                    // the first run's logits
    l.alloc(f32_logits);
    grad_out = f32_logits;
    if (s.e != 4) {
      l.alloc(s.logits);
      l.release(2 * f32_logits);
      grad_out = s.logits;
    }
    // The loss's saved tensors, and the logits it read.
    l.release(s.stats + s.logits + (s.tp > 1 ? vocab_parallel_loss_kept(s) : 0));
  }
  const std::vector<std::vector<Piece>> segments = checkpoint_segments(part, st.interval);
  for (size_t index = segments.size(); index-- > 0;) {
    const std::vector<Piece>& segment = segments[index];
    const int64_t start = l.live;
    for (Piece piece : segment) {
      if (piece == Piece::embedding) l.alloc(embedding_bytes(st.shape, s));
      if (piece == Piece::block) {
        if (llama) rotary_tables(l, st.shape, s);
        (llama ? llama_forward : gpt2_forward)(l, s);
        l.release(llama ? (s.grouped ? 2 : 1) * s.kv : 3 * s.split);
      }
      if (piece == Piece::tail) l.alloc(h + norm_stats + s.logits);
    }

    for (size_t i = segment.size(); i-- > 0;) {
      if (segment[i] == Piece::tail) {
        const int64_t weight = s.vocab * s.embd * s.e, params = (s.bias ? 2 : 1) * s.embd * s.e;
        l.alloc(h + weight);
        l.release(h + (part.tied_here ? 0 : weight) + grad_out);
        l.alloc(h + params);
        l.release(params + norm_stats + h + (i > 0 ? h : 0));
      }
      if (segment[i] == Piece::block) {
        // The gradient coming in: the segment's for its last layer, else the next layer's
        // input gradient (an activation).
        const int64_t incoming = i + 1 == segment.size() ? grad_out : h;
        (llama ? llama_backward : gpt2_backward)(l, s, i > 0 ? h : 0, incoming);
        if (llama) l.release(st.shape.tokens * head_dim * s.e);
      }
    }
    // The re-run (its output included) and the output's gradient go, and so does the input
    // the checkpoint kept (the previous segment's output, or the received input's copy). The
    // input's gradient is handed back as a leaf's .grad (autograd/checkpoint.cpp), a gradient,
    // not an activation: the previous segment's gradient coming in counts nothing.
    const int64_t input = index > 0 || !part.embedding ? h : 0;
    l.live = start - input - grad_out;
    grad_out = 0;
  }
  l.live = end;
  st.kept[size_t(chunk)].pop_front();
}

}  // namespace zt::dist
