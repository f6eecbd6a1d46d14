// What the CPU block-sparse attention kernels share (cpu_block_sparse_attention*.cpp): the
// active key blocks of a row block packed side by side into chunks of about kKeyTile keys, so
// each chunk is one dense tile product however small the blocks are, and the keys transposed
// once per call so that packing a block copies `block` contiguous values per feature.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <span>
#include <type_traits>
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

// AVX-512 paths for f32 and blocks of 16 (cpu_block_sparse_pack.cpp); false when they do not
// apply (another block size or dtype, a width not a multiple of 16, no AVX-512).
bool transpose_rows_fast(const float* rows, int64_t T_len, int64_t width, int64_t block,
                         float* out);
// scores [rows, chunk.size() * 16] = alpha * a [rows, k] times blocks `chunk` of the
// transposed plane [blocks, k, 16], read in place.
bool block_scores_fast(int64_t rows, int64_t k, float alpha, const float* a, int64_t lda,
                       const float* plane, int64_t block, std::span<const int64_t> chunk, float* c,
                       int64_t ldc);
bool pack_transposed_fast(const float* plane, int64_t width, int64_t block,
                          std::span<const int64_t> chunk, int64_t ld, float* packed);

// out[i] = sum_d a[i * lda + d] * b[i * ldb + d], d < width (f32 fast path: width a multiple
// of 16). The library is built for baseline x86-64, where this ran as a chain of scalar adds.
bool row_dots_fast(int64_t rows, int64_t width, const float* a, int64_t lda, const float* b,
                   int64_t ldb, float* out);
template <typename C>
void row_dots(int64_t rows, int64_t width, const C* a, int64_t lda, const C* b, int64_t ldb,
              C* out) {
  if constexpr (std::is_same_v<C, float>) {
    if (row_dots_fast(rows, width, a, lda, b, ldb, out)) return;
  }
  for (int64_t i = 0; i < rows; ++i) {
    C sum = 0;
    for (int64_t d = 0; d < width; ++d) sum += a[i * lda + d] * b[i * ldb + d];
    out[i] = sum;
  }
}

// rows [batch, T, width] of entry b transposed block by block into workspace [batch, blocks,
// width, block] (compute type): each key block's transposed values are one contiguous run of
// width * block, so packing a block reads a few cache lines instead of `width` rows T apart
// (which on long sequences cost a TLB miss each and made the gather the kernel's main cost).
template <typename T, typename C>
void transpose_rows_of(const T* rows, int64_t T_len, int64_t width, int64_t block, int64_t b,
                       C* workspace) {
  C* out = workspace + b * width * T_len;
  const T* in = rows + b * T_len * width;
  if constexpr (std::is_same_v<T, float> && std::is_same_v<C, float>) {
    if (transpose_rows_fast(in, T_len, width, block, out)) return;
  }
  for (int64_t first = 0; first < T_len; first += block) {
    C* block_out = out + first * width;
    for (int64_t j = 0; j < block; ++j)
      for (int64_t e = 0; e < width; ++e) block_out[e * block + j] = C(in[(first + j) * width + e]);
  }
}

// Packs blocks `chunk` of entry `plane` ([blocks, width, block], transpose_rows_of) into
// [width, ld]: block j of the chunk fills columns j * block .. (j + 1) * block.
template <typename C>
void pack_transposed(const C* plane, int64_t width, int64_t block, std::span<const int64_t> chunk,
                     int64_t ld, C* packed) {
  if constexpr (std::is_same_v<C, float>) {
    if (pack_transposed_fast(plane, width, block, chunk, ld, packed)) return;
  }
  for (size_t j = 0; j < chunk.size(); ++j) {
    const C* source = plane + chunk[j] * width * block;
    for (int64_t e = 0; e < width; ++e) {
      std::copy(source + e * block, source + (e + 1) * block, packed + e * ld + int64_t(j) * block);
    }
  }
}

// scores = alpha * a [rows, width] times blocks `chunk` of the transposed plane: in place
// (f32, blocks of 16), else packed into `packed` [width, ld] first.
template <typename C>
void block_scores(int64_t rows, int64_t width, C alpha, const C* a, const C* plane, int64_t block,
                  std::span<const int64_t> chunk, C* packed, C* scores, int64_t ld) {
  if constexpr (std::is_same_v<C, float>) {
    if (block_scores_fast(rows, width, alpha, a, width, plane, block, chunk, scores, ld)) return;
  }
  pack_transposed(plane, width, block, chunk, ld, packed);
  attention_tiles::tile_product(rows, int64_t(chunk.size()) * block, width, alpha, a, width, 1,
                                packed, ld, false, scores, ld);
}

// The rows of blocks `chunk` of [T, width] (entry-local) in the compute type: null when T is
// already C (block_rows then reads them in place), else widened into `buffer` side by side.
template <typename T, typename C>
const C* rows_of_blocks(const T* rows, int64_t width, int64_t block, std::span<const int64_t> chunk,
                        std::vector<C>& buffer) {
  if constexpr (std::is_same_v<T, C>) {
    return nullptr;
  } else {
    buffer.resize(chunk.size() * size_t(block * width));
    for (size_t j = 0; j < chunk.size(); ++j) {
      const T* source = rows + chunk[j] * block * width;
      C* target = buffer.data() + int64_t(j) * block * width;
      for (int64_t i = 0; i < block * width; ++i) target[i] = C(source[i]);
    }
    return buffer.data();
  }
}
// Block j of the chunk's rows: in place, or in the widened copy.
template <typename T, typename C>
const C* block_rows(const C* widened, const T* rows, int64_t width, int64_t block,
                    std::span<const int64_t> chunk, size_t j) {
  if constexpr (std::is_same_v<T, C>) {
    return rows + chunk[j] * block * width;
  } else {
    return widened + int64_t(j) * block * width;
  }
}

// Calls visit(j, count) for each run chunk[j .. j + count) of consecutive blocks: their rows
// are contiguous, in place and in a widened copy alike, so a run is one product with
// count * block on its inner dimension instead of count products of `block` (the sliding
// windows' neighbours are one run; small products spent a quarter of their time loading and
// storing their output tile).
template <typename Visit>
void for_each_run(std::span<const int64_t> chunk, Visit&& visit) {
  for (size_t j = 0; j < chunk.size();) {
    size_t end = j + 1;
    while (end < chunk.size() && chunk[end] == chunk[end - 1] + 1) ++end;
    visit(j, end - j);
    j = end;
  }
}

// C [rows, n] (+)= alpha * A [rows, chunk.size() * 16] times the 16 rows of each block of
// `chunk` in `rows_of` ([T, n], row stride ldb), summed in registers over the whole chunk
// before C is read or written (cpu_block_sparse_pack.cpp): f32, blocks of 16, n a multiple of
// 16, at most 16 blocks; false otherwise.
bool block_rows_product_fast(int64_t rows, int64_t n, float alpha, const float* a, int64_t lda,
                             const float* rows_of, int64_t ldb, int64_t block,
                             std::span<const int64_t> chunk, bool accumulate, float* c,
                             int64_t ldc);
// c [rows, width] (+)= alpha * a [rows, chunk keys] times the rows [T, width] of blocks `chunk`
// (in place, or rows_of_blocks's widened copy): one pass over the chunk where the fast path
// applies, else one product per run of consecutive blocks. `accumulate` false overwrites c.
template <typename T, typename C>
void chunk_rows_product(int64_t rows, int64_t width, int64_t block, C alpha, const C* a,
                        int64_t lda, const C* widened, const T* source,
                        std::span<const int64_t> chunk, bool accumulate, C* c, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    if (block_rows_product_fast(rows, width, alpha, a, lda, source, width, block, chunk, accumulate,
                                c, ldc))
      return;
  }
  for_each_run(chunk, [&](size_t j, size_t count) {
    attention_tiles::tile_product(
        rows, width, int64_t(count) * block, alpha, a + int64_t(j) * block, lda, 1,
        block_rows(widened, source, width, block, chunk, j), width, accumulate, c, ldc);
    accumulate = true;
  });
}

// Consecutive row blocks, up to kGroupRows queries, are computed as one query tile against the
// union of their active blocks when that union wastes at most a quarter of the work (equal
// lists, as in fixed's bidirectional windows or the dense layout, waste none): a 16-row tile
// would repack its keys for every 16 queries, which cost the small blocks 3x the dense
// kernel's time per score. Blocks of the union that a row block lacks are masked.
inline constexpr int64_t kGroupRows = 64;
struct RowGroup {
  int64_t first = 0, count = 1;      // row blocks first .. first + count
  std::span<const int64_t> columns;  // the union of their active blocks, ascending
};
inline int64_t rows_per_group(const BlockSparseArgs& args) {
  return std::max<int64_t>(1, kGroupRows / args.block);
}
// Calls compute(group) for the groups covering row blocks leader .. leader + rows_per_group of
// entry b: one group of them all when their union wastes at most a quarter of the work, else
// each row block alone with the index's own list (no copy). The union is built once per
// leader, in buffers each thread keeps, so no row block allocates.
template <typename Compute>
void for_each_group(const BlockSparseArgs& args, const int64_t* row_offsets, const int64_t* columns,
                    int64_t b, int64_t leader, Compute&& compute) {
  thread_local std::vector<int64_t> union_columns, merged;
  const int64_t count = std::min(rows_per_group(args), args.blocks - leader);
  int64_t total = 0;
  union_columns.clear();
  for (int64_t i = 0; i < count && count > 1; ++i) {
    const std::span<const int64_t> own = active_columns(args, row_offsets, columns, b, leader + i);
    total += int64_t(own.size());
    merged.clear();
    std::set_union(union_columns.begin(), union_columns.end(), own.begin(), own.end(),
                   std::back_inserter(merged));
    union_columns.swap(merged);
  }
  if (count > 1 && 4 * int64_t(union_columns.size()) * count <= 5 * total) {
    return compute(RowGroup{leader, count, union_columns});
  }
  for (int64_t r = leader; r < leader + count; ++r) {
    compute(RowGroup{r, 1, active_columns(args, row_offsets, columns, b, r)});
  }
}

// -inf on the scores a query may not see: blocks of the chunk outside its row block's list
// (groups only), and under the causal rule keys past the query inside the diagonal block.
template <typename C>
void mask_group_scores(const BlockSparseArgs& args, const int64_t* row_offsets,
                       const int64_t* columns, int64_t b, const RowGroup& group,
                       std::span<const int64_t> chunk, C* scores, int64_t ld) {
  constexpr C kMinusInf = -std::numeric_limits<C>::infinity();
  const int64_t block = args.block;
  for (int64_t g = 0; g < group.count; ++g) {
    const int64_t row_block = group.first + g;
    const std::span<const int64_t> own = active_columns(args, row_offsets, columns, b, row_block);
    for (size_t j = 0; j < chunk.size(); ++j) {
      C* tile = scores + g * block * ld + int64_t(j) * block;
      const bool active = group.count == 1 || std::binary_search(own.begin(), own.end(), chunk[j]);
      if (!active) {
        for (int64_t i = 0; i < block; ++i)
          std::fill(tile + i * ld, tile + i * ld + block, kMinusInf);
      } else if (args.causal && chunk[j] == row_block) {
        for (int64_t i = 0; i < block; ++i)
          std::fill(tile + i * ld + i + 1, tile + i * ld + block, kMinusInf);
      }
    }
  }
}

}  // namespace zt::cpu::block_sparse_tiles
