// Fused scaled-dot-product attention without autograd: checks the arguments (each error names
// the argument), broadcasts the batch dims of q, k and v, reads the mask in place through its
// broadcast strides, reserves the dropout counters, and calls one backend kernel. The forward
// keeps the per-row log-sum-exp, from which the backward recomputes the weights tile by tile.
#pragma once

#include <optional>

#include "core/backend.h"
#include "core/generator.h"
#include "core/tensor.h"

namespace zt::ops {

struct AttentionForward {
  Tensor out;  // [batch dims..., L, Ev]
  // What the backward reads: the flattened contiguous inputs, the mask view, the output and
  // the log-sum-exp [batch, L] (f32 for 16-bit inputs), and the call's arguments.
  Tensor q, k, v, mask, lse;
  AttentionArgs args;
  Shape batch_shape;
};

// q [..., L, E], k [..., S, E], v [..., S, Ev]; attn_mask undefined, u8 or q's dtype,
// broadcasting to [..., L, S]; PyTorch's semantics (functions.h). Dropout draws from
// `generator` (the default one when null) only when dropout_p > 0.
AttentionForward attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& attn_mask, double dropout_p, bool is_causal,
                                   std::optional<double> scale, Generator* generator);

struct AttentionGrads {
  Tensor q, k, v;  // in the broadcast batch shape, with q's dtype
};
AttentionGrads attention_backward(const AttentionForward& saved, const Tensor& grad_out);

}  // namespace zt::ops
