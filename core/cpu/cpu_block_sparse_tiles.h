// What the CPU block-sparse attention kernels share (cpu_block_sparse_attention*.cpp): the
// active key blocks of a row block packed side by side into chunks of about kKeyTile keys, so
// each chunk is one dense tile product however small the blocks are, and the keys transposed
// once per call so that packing a block copies `block` contiguous values per feature.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "core/cpu/cpu_attention_tiles.h"

namespace zt::cpu::block_sparse_tiles {

using attention_tiles::kKeyTile;

// Key blocks per chunk and the chunk's width in keys (the leading dimension of its tiles).
inline int64_t chunk_blocks(const BlockSparseArgs& args) {
  return std::max<int64_t>(1, kKeyTile / args.block);
}
inline int64_t chunk_width(const BlockSparseArgs& args) {
  return chunk_blocks(args) * args.block;
}

// Below attention_tiles::kParallelWork multiply-adds over the active blocks a call runs on one
// thread. `active_blocks` counts the blocks of the index (layout_heads layouts).
inline int block_sparse_threads(const BlockSparseArgs& args, int64_t active_blocks) {
  const int64_t work =
      args.batch / args.layout_heads * active_blocks * args.block * args.block * (args.E + args.Ev);
  return work > attention_tiles::kParallelWork ? num_threads() : 1;
}

// The active column blocks of entry `entry`'s row block `row_block`.
inline std::span<const int64_t> active_columns(const BlockSparseArgs& args,
                                               const int64_t* row_offsets, const int64_t* columns,
                                               int64_t entry, int64_t row_block) {
  const int64_t slot = block_sparse_row_slot(args, entry, row_block);
  return {columns + row_offsets[slot], size_t(row_offsets[slot + 1] - row_offsets[slot])};
}

// rows [batch, T, width] of entry b transposed to workspace [batch, width, T] (compute type).
template <typename T, typename C>
void transpose_rows_of(const T* rows, int64_t T_len, int64_t width, int64_t b, C* workspace) {
  C* out = workspace + b * width * T_len;
  const T* in = rows + b * T_len * width;
  for (int64_t s = 0; s < T_len; ++s)
    for (int64_t e = 0; e < width; ++e) out[e * T_len + s] = C(in[s * width + e]);
}

// Packs blocks `chunk` of the transposed [width, T] plane into [width, ld]: block j of the
// chunk fills columns j * block .. (j + 1) * block.
template <typename C>
void pack_transposed(const C* plane, int64_t T_len, int64_t width, int64_t block,
                     std::span<const int64_t> chunk, int64_t ld, C* packed) {
  for (int64_t e = 0; e < width; ++e) {
    for (size_t j = 0; j < chunk.size(); ++j) {
      const C* source = plane + e * T_len + chunk[j] * block;
      std::copy(source, source + block, packed + e * ld + int64_t(j) * block);
    }
  }
}

// Packs the rows of blocks `chunk` of [T, width] (entry-local) into [chunk keys, width].
template <typename T, typename C>
void pack_rows(const T* rows, int64_t width, int64_t block, std::span<const int64_t> chunk,
               C* packed) {
  for (size_t j = 0; j < chunk.size(); ++j) {
    const T* source = rows + chunk[j] * block * width;
    C* target = packed + int64_t(j) * block * width;
    for (int64_t i = 0; i < block * width; ++i) target[i] = C(source[i]);
  }
}

// The causal rule inside the diagonal block: in a chunk holding row block `row_block`, key
// (block j, offset c) is hidden from query i of the row block when c > i.
template <typename C>
void mask_diagonal(const BlockSparseArgs& args, int64_t row_block, std::span<const int64_t> chunk,
                   C* scores, int64_t ld) {
  if (!args.causal) return;
  for (size_t j = 0; j < chunk.size(); ++j) {
    if (chunk[j] != row_block) continue;
    for (int64_t i = 0; i < args.block; ++i) {
      C* row = scores + i * ld + int64_t(j) * args.block;
      for (int64_t c = i + 1; c < args.block; ++c) row[c] = -std::numeric_limits<C>::infinity();
    }
  }
}

}  // namespace zt::cpu::block_sparse_tiles
