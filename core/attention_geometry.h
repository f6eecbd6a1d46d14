// What the fused attention kernels of every backend share: the arguments of one call and the
// per-position rules (causal, mask, dropout), as ZT_HOST_DEVICE functions so that the CPU and
// CUDA kernels apply the same rule bit for bit. q, k, v arrive flattened to [batch, L, E],
// [batch, S, E], [batch, S, Ev]; the mask is read in place through its broadcast strides.
#pragma once

#include <cstdint>

#include "core/host_device.h"
#include "core/philox.h"

namespace zt {

enum class AttentionMask : uint8_t { none, keep_u8, additive };

struct AttentionArgs {
  static constexpr int kMaxBatchDims = 8;
  int64_t batch = 1;  // product of the broadcast batch dims
  int64_t L = 0, S = 0, E = 0, Ev = 0;
  double scale = 1.0;
  bool causal = false;
  // The mask [..., L, S] read through strides (0 where broadcast): element (b, l, s) sits at
  // mask_batch_offset(b) + l * mask_stride_l + s * mask_stride_s of the mask's data.
  AttentionMask mask = AttentionMask::none;
  int batch_dims = 0;
  int64_t batch_sizes[kMaxBatchDims] = {};
  int64_t mask_batch_strides[kMaxBatchDims] = {};
  int64_t mask_stride_l = 0, mask_stride_s = 0;
  // Dropout on the normalised weights: position (b, l, s) is counter (b * L + l) * S + s of the
  // draw at (seed, offset), the index of that weight in a contiguous [batch, L, S] tensor, so
  // the mask is the one ops::dropout would draw for the composed reference.
  double dropout_p = 0.0;
  uint64_t seed = 0, offset = 0;
};

// Where batch b's [L, S] mask plane starts, in elements of the mask's data.
ZT_HOST_DEVICE inline int64_t attention_mask_batch_offset(const AttentionArgs& args, int64_t b) {
  int64_t offset = 0;
  for (int dim = args.batch_dims - 1; dim >= 0; --dim) {
    offset += (b % args.batch_sizes[dim]) * args.mask_batch_strides[dim];
    b /= args.batch_sizes[dim];
  }
  return offset;
}

// The last key (exclusive) that query l may see under the causal rule: s <= l, aligned to the
// top-left corner as in PyTorch, whatever L and S are.
ZT_HOST_DEVICE inline int64_t attention_key_end(const AttentionArgs& args, int64_t l) {
  if (!args.causal) return args.S;
  return l + 1 < args.S ? l + 1 : args.S;
}

// Whether dropout keeps weight (b, l, s): its uniform draw (53 bits for f64, else 24 bits, as
// the dropout kernels) is >= p.
ZT_HOST_DEVICE inline bool attention_dropout_keeps(const AttentionArgs& args, int64_t b, int64_t l,
                                                   int64_t s, bool f64_draw) {
  const uint64_t index = uint64_t((b * args.L + l) * args.S + s);
  const philox::Block block = philox::block_for(args.seed, args.offset, index);
  const double uniform = f64_draw ? philox::uniform_53bit(block.word[0], block.word[1])
                                  : double(philox::uniform_24bit(block.word[0]));
  return uniform >= args.dropout_p;
}

// One block-sparse attention call (core/ops/block_sparse_attention.h): `batch` entries of one
// head each (batch * heads of the model), sequence length T = blocks * block for queries and
// keys. Entry i reads the layout of head i % heads, or the one layout when layout_heads is 1.
// The active key blocks of each (layout head, row block) come as CSR index tensors built by
// the ops layer; under `causal` they hold no block above the diagonal, and within a diagonal
// block key s is visible to query l only when s <= l.
struct BlockSparseArgs {
  int64_t batch = 0, heads = 1, layout_heads = 1;
  int64_t T = 0, E = 0, Ev = 0, block = 0, blocks = 0;
  double scale = 1.0;
  bool causal = false;
};

// Where entry i's row block r finds its active columns: columns[offsets[slot] .. offsets[slot
// + 1]), slot = (layout head) * blocks + r.
ZT_HOST_DEVICE inline int64_t block_sparse_row_slot(const BlockSparseArgs& args, int64_t entry,
                                                    int64_t row_block) {
  const int64_t layout_head = args.layout_heads == 1 ? 0 : entry % args.heads;
  return layout_head * args.blocks + row_block;
}

}  // namespace zt
