// CPU block-sparse attention, backward: one task per entry (one head of one sequence), in
// parallel, so each task owns its rows of grad_k and grad_v and sums into them in one order
// on any thread count. For each row block it recomputes P = exp(score - lse) over the active
// key blocks, chunk by chunk, and with D = rowsum(grad_out * out) (= rowsum(P * dP)):
//   grad_v += P^T grad_out,  dS = P * (grad_out v^T - D),
//   grad_q += scale dS k,    grad_k += scale dS^T q,
// each key block's gradients summed in a ring in cache (KeyGradientRing) and each row group's
// grad_q in its own tile, both written out once.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/cpu_block_sparse_key_gradients.h"
#include "core/cpu/cpu_block_sparse_tiles.h"
#include "core/factory.h"
#include "core/parallel.h"

namespace zt::cpu {

using namespace attention_tiles;
using namespace block_sparse_tiles;

namespace {

// Keys of a causal diagonal block per product of its key gradients: the row tile of
// attention_tiles' product, so that no tile mixes keys whose queries start apart.
inline constexpr int64_t kDiagonalKeyTile = 6;

template <typename C>
struct SparseBackwardScratch {
  std::vector<C> keys_t, values_t, keys, weights, grad_scores;  // one chunk's tiles
  void size_for(const BlockSparseArgs& args) {
    const int64_t ld = chunk_width(args);
    keys_t.resize(size_t(args.E * ld));
    values_t.resize(size_t(args.Ev * ld));
    weights.resize(size_t(std::max(args.block, kGroupRows) * ld));
    grad_scores.resize(weights.size());
  }
};

// One row group between its first chunk and its last.
template <typename C>
struct BackwardRows {
  RowGroup group;
  std::vector<C> q, out, grad_out;  // widened tiles (16-bit inputs only)
  const C *q_tile = nullptr, *grad_out_tile = nullptr;
  // The group's grad_q rows, in cache until the last chunk (then written out past the cache,
  // write_scaled_rows), and whether they hold a first product.
  std::vector<C> grad_q_sum;
  bool grad_q_written = false;
  // D = rowsum(grad_out * out) per row; equal to rowsum(P * dP) over the row's keys, so a group
  // whose blocks are one chunk takes it from the chunk's tiles (delta_from_chunk).
  std::vector<C> row_delta;
  bool delta_from_chunk = false;
};

// P from the chunk's scores and the rows' log-sum-exp (0 for a row with nothing to attend).
template <typename C>
void weights_from_scores(int64_t rows, int64_t cols, int64_t ld, const C* lse, C* weights) {
  for (int64_t i = 0; i < rows; ++i) {
    C* row = weights + i * ld;
    if (lse[i] == -std::numeric_limits<C>::infinity()) {
      std::fill(row, row + cols, C(0));
    } else {
      exp_shifted(row, cols, lse[i]);
    }
  }
}

// The backward of one entry's row groups (sweep_entry's visitor); pointers are entry-local.
template <typename T>
struct BackwardVisitor {
  using C = compute_type<T>;
  const BlockSparseArgs& args;
  const T *q, *k, *out, *grad_out;  // [T, E] / [T, Ev]
  const C* lse;
  C* grad_q;
  const int64_t *row_offsets, *columns;  // the index, for the masks of groups
  int64_t b;
  TransposedBlocks<T, C>&keys_t, &values_t;
  KeyGradientRing<C>& key_sums;
  SparseBackwardScratch<C>& scratch;
  std::vector<BackwardRows<C>>& states;  // by sweep id; 0 is reused group after group

  void begin(size_t id, const RowGroup& group) {
    if (states.size() <= id) states.resize(id + 1);
    BackwardRows<C>& rows = states[id];
    const int64_t count = group.count * args.block, l0 = group.first * args.block;
    rows.group = group;
    rows.q_tile = widened(q + l0 * args.E, count * args.E, rows.q);
    rows.grad_out_tile = widened(grad_out + l0 * args.Ev, count * args.Ev, rows.grad_out);
    rows.row_delta.resize(size_t(count));
    // A group of one chunk (the sliding windows' rows, 4-5 blocks) takes D from P * dP in
    // cache and never reads `out`: those rows were a cold read of T x Ev values per call, a
    // twentieth of the window modes' backward, for 16 dot products of 64 values a row block.
    rows.delta_from_chunk = int64_t(group.columns.size()) <= chunk_blocks(args);
    if (!rows.delta_from_chunk) {
      const C* out_tile = widened(out + l0 * args.Ev, count * args.Ev, rows.out);
      row_dots(count, args.Ev, rows.grad_out_tile, args.Ev, out_tile, args.Ev,
               rows.row_delta.data());
    }
    rows.grad_q_sum.resize(size_t(count * args.E));
    rows.grad_q_written = false;
  }

  void chunk(size_t id, std::span<const int64_t> chunk, size_t) {
    BackwardRows<C>& rows = states[id];
    const int64_t count = rows.group.count * args.block, E = args.E, Ev = args.Ev;
    const int64_t ld = chunk_width(args), cols = int64_t(chunk.size()) * args.block;
    C* weights = scratch.weights.data();
    block_scores(count, E, C(args.scale), rows.q_tile, keys_t.with(chunk), args.block,
                 scratch.keys_t.data(), weights, ld);
    mask_group_scores(args, row_offsets, columns, b, rows.group, chunk, weights, ld);
    weights_from_scores(count, cols, ld, lse + rows.group.first * args.block, weights);
    // dP = grad_out v^T; dS = P * (dP - D)
    C* grad_scores = scratch.grad_scores.data();
    block_scores(count, Ev, C(1), rows.grad_out_tile, values_t.with(chunk), args.block,
                 scratch.values_t.data(), grad_scores, ld);
    if (rows.delta_from_chunk)
      row_dots(count, cols, weights, ld, grad_scores, ld, rows.row_delta.data());
    for (int64_t i = 0; i < count; ++i) {
      const C delta = rows.row_delta[size_t(i)];
      C* grad = grad_scores + i * ld;
      const C* weight = weights + i * ld;
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) grad[j] = weight[j] * (grad[j] - delta);
    }
    // grad_q += scale dS k (k read in place, or widened), into the group's own tile: the first
    // product writes it, later ones add.
    const C* keys = rows_of_blocks(k, E, args.block, chunk, scratch.keys);
    const int64_t diagonal = causal_diagonal(args, rows.group, chunk);
    chunk_rows_product(count, E, args.block, C(args.scale), grad_scores, ld, keys, k, chunk,
                       rows.grad_q_written, rows.grad_q_sum.data(), E, diagonal);
    rows.grad_q_written = true;
    // grad_v += P^T grad_out and grad_k += scale dS^T q for `keys` keys from chunk offset
    // `offset` into `target`, over the group's queries from first_query on.
    auto key_gradients = [&](int64_t offset, const typename KeyGradientRing<C>::Target& target,
                             int64_t keys, int64_t first_query) {
      const int64_t queries = count - first_query;
      tile_product(keys, Ev, queries, C(1), weights + first_query * ld + offset, 1, ld,
                   rows.grad_out_tile + first_query * Ev, Ev, target.accumulate, target.grad_v, Ev);
      tile_product(keys, E, queries, C(args.scale), grad_scores + first_query * ld + offset, 1, ld,
                   rows.q_tile + first_query * E, E, target.accumulate, target.grad_k, E);
    };
    // Per block, into the ring (the first product writes, later ones add: written to 0 + x and
    // added to x give the same bits); the causal diagonal block's keys in tiles of
    // kDiagonalKeyTile, each over the queries from its first key on (the weights before are
    // zeros).
    key_sums.begin_chunk();
    for (size_t j = 0; j < chunk.size(); ++j) {
      const typename KeyGradientRing<C>::Target target = key_sums.target(chunk[j]);
      const int64_t offset = int64_t(j) * args.block;
      if (int64_t(j) != diagonal) {
        key_gradients(offset, target, args.block, 0);
        continue;
      }
      for (int64_t key = 0; key < args.block; key += kDiagonalKeyTile) {
        const typename KeyGradientRing<C>::Target rows_from{
            target.grad_k + key * E, target.grad_v + key * Ev, target.accumulate};
        key_gradients(offset + key, rows_from, std::min(kDiagonalKeyTile, args.block - key), key);
      }
    }
  }

  void finish(size_t id) {
    const BackwardRows<C>& rows = states[id];
    const int64_t l0 = rows.group.first * args.block, count = rows.group.count * args.block;
    if (rows.grad_q_written) {
      write_scaled_rows(count, args.E, rows.grad_q_sum.data(), args.E,
                        static_cast<const C*>(nullptr), grad_q + l0 * args.E, args.E);
    } else {
      std::fill(grad_q + l0 * args.E, grad_q + (l0 + count) * args.E, C(0));
    }
  }
};

}  // namespace

void CpuBackend::block_sparse_attention_backward(const BlockSparseArgs& args, const Tensor& q,
                                                 const Tensor& k, const Tensor& v,
                                                 const Tensor& row_offsets, const Tensor& columns,
                                                 const Tensor& out, const Tensor& lse,
                                                 const Tensor& grad_out, const Tensor& grad_q,
                                                 const Tensor& grad_k, const Tensor& grad_v) {
  dispatch_floating(q.dtype(), "block_sparse_attention_backward", [&]<typename T>() {
    using C = compute_type<T>;
    const int threads = block_sparse_threads(args, columns.numel());
    const int64_t team = std::min<int64_t>(threads, args.batch);
    // Per thread, for entry after entry: a ring of transposed keys and one of values
    // (TransposedBlocks), and one of key and value gradients (KeyGradientRing).
    const int64_t per_chunk = chunk_blocks(args);
    const int64_t keys_ring = TransposedBlocks<T, C>::ring_size(args.E, args.block, per_chunk);
    const int64_t values_ring = TransposedBlocks<T, C>::ring_size(args.Ev, args.block, per_chunk);
    const int64_t sums_ring = KeyGradientRing<C>::ring_size(args.block, args.E, args.Ev);
    const int64_t per_thread = keys_ring + values_ring + sums_ring;
    const Tensor rings = empty({team, per_thread}, {.dtype = lse.dtype(), .tag = MemoryTag::other});
    const int64_t* offsets = row_offsets.data_ptr<int64_t>();
    const int64_t* column_data = columns.data_ptr<int64_t>();
    const int64_t T_len = args.T, E = args.E, Ev = args.Ev;
#pragma omp parallel num_threads(int(team))
    {
      SparseBackwardScratch<C> scratch;
      scratch.size_for(args);
      std::vector<BackwardRows<C>> states;
      C* thread_rings = rings.data_ptr<C>() + int64_t(thread_index()) * per_thread;
      TransposedBlocks<T, C> keys_t(E, args.block, per_chunk, thread_rings);
      TransposedBlocks<T, C> values_t(Ev, args.block, per_chunk, thread_rings + keys_ring);
      KeyGradientRing<C> key_sums(args.blocks, args.block, E, Ev,
                                  thread_rings + keys_ring + values_ring);
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < args.batch; ++b) {
        const T* k_entry = k.data_ptr<T>() + b * T_len * E;
        keys_t.read_rows(k_entry);
        values_t.read_rows(v.data_ptr<T>() + b * T_len * Ev);
        key_sums.start(grad_k.data_ptr<C>() + b * T_len * E, grad_v.data_ptr<C>() + b * T_len * Ev);
        BackwardVisitor<T> visitor{args,
                                   q.data_ptr<T>() + b * T_len * E,
                                   k_entry,
                                   out.data_ptr<T>() + b * T_len * Ev,
                                   grad_out.data_ptr<T>() + b * T_len * Ev,
                                   lse.data_ptr<C>() + b * T_len,
                                   grad_q.data_ptr<C>() + b * T_len * E,
                                   offsets,
                                   column_data,
                                   b,
                                   keys_t,
                                   values_t,
                                   key_sums,
                                   scratch,
                                   states};
        sweep_entry(args, offsets, column_data, b, visitor);
        key_sums.finish();
      }
      fence_streamed_rows();
    }
  });
}

}  // namespace zt::cpu
