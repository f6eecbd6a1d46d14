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
// scores [rows, blocks.size() * 16] = alpha * a [rows, k] times the transposed key blocks
// `blocks` (each [k, 16]), read in place.
bool block_scores_fast(int64_t rows, int64_t k, float alpha, const float* a, int64_t lda,
                       std::span<const float* const> blocks, int64_t block, float* c, int64_t ldc);
bool pack_transposed_fast(std::span<const float* const> blocks, int64_t width, int64_t block,
                          int64_t ld, float* packed);

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

// target [rows, n] = source [rows, n] times scales[i] per row (1 when scales is null). The
// f32 path (n a multiple of 16, rows on cache-line boundaries) stores past the cache: the
// rows are final, and an ordinary store first reads each line it writes from memory, a third
// more traffic for an output that long sequences stream through once.
bool stream_scaled_rows_fast(int64_t rows, int64_t n, const float* source, int64_t lds,
                             const float* scales, float* target, int64_t ldt);
// Streaming stores are weakly ordered: a task fences its own once it has written its rows,
// before another thread may read them (a fence per row group stalled on each group's stores).
void fence_streamed_rows();
template <typename C>
void write_scaled_rows(int64_t rows, int64_t n, const C* source, int64_t lds, const C* scales,
                       C* target, int64_t ldt) {
  if constexpr (std::is_same_v<C, float>) {
    if (stream_scaled_rows_fast(rows, n, source, lds, scales, target, ldt)) return;
  }
  for (int64_t i = 0; i < rows; ++i) {
    const C scale = scales != nullptr ? scales[i] : C(1);
    for (int64_t j = 0; j < n; ++j) target[i * ldt + j] = source[i * lds + j] * scale;
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

// Packs the transposed blocks `blocks` (each [width, block]) into [width, ld]: block j fills
// columns j * block .. (j + 1) * block.
template <typename C>
void pack_transposed(std::span<const C* const> blocks, int64_t width, int64_t block, int64_t ld,
                     C* packed) {
  if constexpr (std::is_same_v<C, float>) {
    if (pack_transposed_fast(blocks, width, block, ld, packed)) return;
  }
  for (size_t j = 0; j < blocks.size(); ++j) {
    for (int64_t e = 0; e < width; ++e) {
      std::copy(blocks[j] + e * block, blocks[j] + (e + 1) * block,
                packed + e * ld + int64_t(j) * block);
    }
  }
}

// scores = alpha * a [rows, width] times the transposed blocks `blocks`: in place (f32,
// blocks of 16), else packed into `packed` [width, ld] first.
template <typename C>
void block_scores(int64_t rows, int64_t width, C alpha, const C* a,
                  std::span<const C* const> blocks, int64_t block, C* packed, C* scores,
                  int64_t ld) {
  if constexpr (std::is_same_v<C, float>) {
    if (block_scores_fast(rows, width, alpha, a, width, blocks, block, scores, ld)) return;
  }
  pack_transposed(blocks, width, block, ld, packed);
  attention_tiles::tile_product(rows, int64_t(blocks.size()) * block, width, alpha, a, width, 1,
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
// 16, at most 16 blocks; false otherwise. `diagonal`: the chunk offset of the causal diagonal
// block of a single row block (rows = 16), or -1. Its weights above the diagonal are zeros, so
// a tile of rows reads its keys only up to its last row (a third of a causal sliding window's
// blocks are diagonal ones).
bool block_rows_product_fast(int64_t rows, int64_t n, float alpha, const float* a, int64_t lda,
                             const float* rows_of, int64_t ldb, int64_t block,
                             std::span<const int64_t> chunk, bool accumulate, float* c, int64_t ldc,
                             int64_t diagonal);
// c [rows, width] (+)= alpha * a [rows, chunk keys] times the rows [T, width] of blocks `chunk`
// (in place, or rows_of_blocks's widened copy): one pass over the chunk where the fast path
// applies, else one product per run of consecutive blocks. `accumulate` false overwrites c.
template <typename T, typename C>
void chunk_rows_product(int64_t rows, int64_t width, int64_t block, C alpha, const C* a,
                        int64_t lda, const C* widened, const T* source,
                        std::span<const int64_t> chunk, bool accumulate, C* c, int64_t ldc,
                        int64_t diagonal = -1) {
  if constexpr (std::is_same_v<T, float>) {
    if (block_rows_product_fast(rows, width, alpha, a, lda, source, width, block, chunk, accumulate,
                                c, ldc, diagonal))
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
// The offset in `chunk` of the causal diagonal block of `group` when the group is one row
// block (its rows then see the block's keys up to their own), else -1.
inline int64_t causal_diagonal(const BlockSparseArgs& args, const RowGroup& group,
                               std::span<const int64_t> chunk) {
  if (!args.causal || group.count != 1) return -1;
  const auto found = std::find(chunk.begin(), chunk.end(), group.first);
  return found == chunk.end() ? -1 : int64_t(found - chunk.begin());
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

// Which key block each of kRingBlocks slots holds (slot = block % kRingBlocks), for the rings
// of one thread that keep a few blocks in cache (TransposedBlocks, KeyGradientRing). The
// slots a chunk's blocks hold stay theirs until the next chunk: a block whose slot another
// block of the same chunk holds is `busy` and must be served from elsewhere.
inline constexpr int64_t kRingBlocks = 64;
class RingSlots {
 public:
  enum class Kind { held, taken, busy };
  struct Claim {
    size_t slot;
    Kind kind;        // held: the slot holds the block already; taken: it is the block's now
    int64_t evicted;  // taken: the block the slot held before, -1 for none
  };

  RingSlots() : holder_(size_t(kRingBlocks), -1), claimed_(size_t(kRingBlocks), 0) {}
  void reset() { std::fill(holder_.begin(), holder_.end(), -1); }
  void begin_chunk() { ++epoch_; }

  Claim claim(int64_t column) {
    const size_t slot = size_t(column % kRingBlocks);
    if (holder_[slot] == column) {
      claimed_[slot] = epoch_;
      return {slot, Kind::held, -1};
    }
    if (holder_[slot] >= 0 && claimed_[slot] == epoch_) return {slot, Kind::busy, -1};
    const int64_t evicted = holder_[slot];
    holder_[slot] = column;
    claimed_[slot] = epoch_;
    return {slot, Kind::taken, evicted};
  }

  // Calls visit(slot, block) for each slot that holds a block.
  template <typename Visit>
  void for_each_held(Visit&& visit) const {
    for (size_t slot = 0; slot < holder_.size(); ++slot) {
      if (holder_[slot] >= 0) visit(slot, holder_[slot]);
    }
  }

 private:
  std::vector<int64_t> holder_;    // per slot: the block it holds, -1 for none
  std::vector<uint64_t> claimed_;  // per slot: the last chunk whose blocks use it
  uint64_t epoch_ = 0;
};

// The transposed blocks ([width, block], transpose_rows_of's layout) of one entry's rows
// ([T, width]) that a chunk reads: from a plane transposed up front by the caller, or from a
// ring that one thread reuses for entry after entry, each block transposed when a chunk needs
// it and its slot does not hold it (a busy slot's block goes to an overflow slot of the
// chunk). The ring stays in cache: a plane of the whole entry, filled block by block, cost at
// T = 8192 a read of each of its lines from memory before the write and a write back after (a
// fifth of the causal window modes' time), where the window modes reuse a block for a few
// rows only.
template <typename T, typename C>
class TransposedBlocks {
 public:
  // `ring`: ring_size(..) values of this thread's, or null when every entry comes as a plane.
  TransposedBlocks(int64_t width, int64_t block, int64_t per_chunk, C* ring)
      : width_(width), block_(block), ring_(ring) {
    if (ring != nullptr) overflow_ = ring + kRingBlocks * width * block;
    pointers_.reserve(size_t(per_chunk));
  }
  static int64_t ring_size(int64_t width, int64_t block, int64_t per_chunk) {
    return (kRingBlocks + per_chunk) * width * block;
  }

  // The next entry's blocks, all transposed already in `plane` ([blocks, width, block]).
  void read_plane(const C* plane) {
    plane_ = plane;
    rows_ = nullptr;
  }
  // The next entry's `rows`, transposed into the ring as chunks need them.
  void read_rows(const T* rows) {
    rows_ = rows;
    slots_.reset();
  }

  // One pointer per block of `chunk`, valid until the next call.
  std::span<const C* const> with(std::span<const int64_t> chunk) {
    pointers_.clear();
    const int64_t size = width_ * block_;
    if (rows_ == nullptr) {
      for (int64_t column : chunk) pointers_.push_back(plane_ + column * size);
      return pointers_;
    }
    slots_.begin_chunk();
    for (size_t j = 0; j < chunk.size(); ++j) {
      const RingSlots::Claim claim = slots_.claim(chunk[j]);
      C* target = claim.kind == RingSlots::Kind::busy ? overflow_ + int64_t(j) * size
                                                      : ring_ + int64_t(claim.slot) * size;
      if (claim.kind != RingSlots::Kind::held)
        transpose_rows_of(rows_ + chunk[j] * size, block_, width_, block_, 0, target);
      pointers_.push_back(target);
    }
    return pointers_;
  }

 private:
  int64_t width_, block_;
  C *ring_, *overflow_ = nullptr;
  const T* rows_ = nullptr;  // entry-local [T, width], or null: read from plane_
  const C* plane_ = nullptr;
  RingSlots slots_;
  std::vector<const C*> pointers_;
};

// Rows whose list is far longer than the entry's typical row: the global rows of bigbird,
// bslongformer and variable, which attend every block. The sweep (sweep_entry) runs them a
// chunk at a time as it passes their blocks.
inline bool is_long_row(const RowGroup& group, int64_t per_chunk, int64_t entry_active,
                        int64_t blocks) {
  const int64_t size = int64_t(group.columns.size());
  return group.count == 1 && size > per_chunk && size * blocks > 8 * entry_active;
}

// A row group run whole, under id 0: begin, its chunks in order, finish (sweep_entry).
template <typename Visitor>
void visit_whole_group(const BlockSparseArgs& args, const RowGroup& group, Visitor&& visitor) {
  const size_t per_chunk = size_t(chunk_blocks(args));
  visitor.begin(0, group);
  for (size_t first = 0; first < group.columns.size(); first += per_chunk) {
    const size_t count = std::min(group.columns.size() - first, per_chunk);
    visitor.chunk(0, group.columns.subspan(first, count), first);
  }
  visitor.finish(0);
}

// Calls visitor.begin(id, group), visitor.chunk(id, chunk, first) for each chunk of the group's
// list (`first`: the chunk's offset in the list) and visitor.finish(id) for every row group of
// entry b, in order. The long rows (is_long_row) are deferred, each under its own id from 1 up:
// a chunk of one runs right after the first group whose last block reaches the chunk's last
// block, while the neighbouring rows' windows have those keys and values in cache. Run whole
// first, a global row at T = 8192 read every key and value block from memory one more time,
// and in the backward wrote gradients that the windows then read back: a third of a call's
// memory traffic, where the small rows are bound by memory. Each row's chunks still run in
// their order, so a row's arithmetic is the same as run whole.
template <typename Visitor>
void sweep_entry(const BlockSparseArgs& args, const int64_t* row_offsets, const int64_t* columns,
                 int64_t b, Visitor&& visitor) {
  struct LongRow {
    RowGroup group;
    size_t next = 0;  // the list offset of its next chunk
  };
  const size_t per_chunk = size_t(chunk_blocks(args));
  const int64_t first_slot = block_sparse_row_slot(args, b, 0);
  const int64_t entry_active = row_offsets[first_slot + args.blocks] - row_offsets[first_slot];
  std::vector<LongRow> long_rows;
  auto advance = [&](size_t row, int64_t up_to_block) {
    LongRow& long_row = long_rows[row];
    const std::span<const int64_t> active = long_row.group.columns;
    while (long_row.next < active.size()) {
      const size_t count = std::min(active.size() - long_row.next, per_chunk);
      if (active[long_row.next + count - 1] > up_to_block) break;
      visitor.chunk(row + 1, active.subspan(long_row.next, count), long_row.next);
      long_row.next += count;
    }
  };
  for (int64_t leader = 0; leader < args.blocks; leader += rows_per_group(args)) {
    for_each_group(args, row_offsets, columns, b, leader, [&](const RowGroup& group) {
      if (is_long_row(group, int64_t(per_chunk), entry_active, args.blocks)) {
        long_rows.push_back({group, 0});
        visitor.begin(long_rows.size(), group);
        return;
      }
      visit_whole_group(args, group, visitor);
      if (group.columns.empty()) return;
      for (size_t row = 0; row < long_rows.size(); ++row) advance(row, group.columns.back());
    });
  }
  for (size_t row = 0; row < long_rows.size(); ++row) {
    advance(row, std::numeric_limits<int64_t>::max());
    visitor.finish(row + 1);
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
