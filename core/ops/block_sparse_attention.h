// Block-sparse attention without autograd: a layout (core/sparse_layout.h) becomes a CSR index
// of active key blocks per (layout head, row block), and one backend kernel computes softmax
// attention over the active blocks only, keeping each row's log-sum-exp for the backward.
// Equal to dense attention with the layout expanded to a token mask (and, for a causal index,
// the causal rule), on every row that has at least one visible key.
#pragma once

#include <optional>

#include "core/backend.h"
#include "core/sparse_layout.h"
#include "core/tensor.h"

namespace zt::ops {

// The active blocks of a layout as i64 tensors on `device`: columns[row_offsets[slot] ..
// row_offsets[slot + 1]), slot = layout head * blocks + row block, ascending. Heads with equal
// planes share one (layout_heads 1). Under `causal`, blocks above the diagonal are left out
// (no key of theirs is visible).
struct BlockSparseIndex {
  Tensor row_offsets, columns;
  int64_t layout_heads = 0, blocks = 0, block = 0;
  bool causal = false;
  int64_t active_blocks() const { return columns.defined() ? columns.numel() : 0; }
};
BlockSparseIndex block_sparse_index(const SparseLayout& layout, bool causal, Device device);

struct BlockSparseForward {
  Tensor out;           // [..., H, T, Ev]
  Tensor q, k, v, lse;  // flattened contiguous inputs and the log-sum-exp [batch * H, T]
  BlockSparseIndex index;
  BlockSparseArgs args;
  Shape out_shape;
};

// q, k [..., H, T, E], v [..., H, T, Ev], one shape of batch dims, T = index.blocks *
// index.block, index.layout_heads 1 or H. Each error names the argument and what it expected.
BlockSparseForward block_sparse_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                                  const BlockSparseIndex& index,
                                                  std::optional<double> scale);

struct BlockSparseGrads {
  Tensor q, k, v;  // in the inputs' shapes and dtype
};
BlockSparseGrads block_sparse_attention_backward(const BlockSparseForward& saved,
                                                 const Tensor& grad_out);

}  // namespace zt::ops
