// CPU block-sparse attention, backward: one task per entry (one head of one sequence), in
// parallel, so each task owns its rows of grad_k and grad_v and sums into them in one order
// on any thread count. For each row block it recomputes P = exp(score - lse) over the active
// key blocks, chunk by chunk, and with D = rowsum(grad_out * out) (= rowsum(P * dP)):
//   grad_v += P^T grad_out,  dS = P * (grad_out v^T - D),
//   grad_q += scale dS k,    grad_k += scale dS^T q,
// each key block's gradients added straight into its rows.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/cpu_block_sparse_tiles.h"
#include "core/factory.h"
#include "core/parallel.h"

namespace zt::cpu {

using namespace attention_tiles;
using namespace block_sparse_tiles;

namespace {

template <typename C>
struct SparseBackwardScratch {
  std::vector<C> q, out, grad_out;  // widened tiles (16-bit inputs only)
  std::vector<C> keys_t, values_t, keys, weights, grad_scores;
  bool grad_q_written = false;  // the group's grad_q rows hold a first product
  // D = rowsum(grad_out * out) per row; equal to rowsum(P * dP) over the row's keys, so a group
  // whose blocks are one chunk takes it from the chunk's tiles (delta_from_chunk).
  std::vector<C> row_delta;
  bool delta_from_chunk = false;
  // Per key block of the entry: whether its grad_k and grad_v rows hold a first product yet.
  // The first product writes them, later ones add, and the blocks no row visits are zeroed at
  // the end, instead of zeroing all T rows first (with the zeroing the op did too, about a
  // tenth of the window modes' time).
  std::vector<uint8_t> written;
  void size_for(const BlockSparseArgs& args) {
    const int64_t ld = chunk_width(args);
    keys_t.resize(size_t(args.E * ld));
    values_t.resize(size_t(args.Ev * ld));
    weights.resize(size_t(std::max(args.block, kGroupRows) * ld));
    grad_scores.resize(weights.size());
  }
};

template <typename T>
struct EntryData {
  const T *q, *k, *out, *grad_out;  // entry-local [T, E] / [T, Ev]
  const compute_type<T>*keys_t, *values_t;
  const compute_type<T>* lse;
  compute_type<T>*grad_q, *grad_k, *grad_v;
  const int64_t *row_offsets, *columns;  // the index, for the masks of groups
  int64_t b;
};

// Calls visit(j, count, accumulate) for each run chunk[j .. j + count) of consecutive blocks
// whose `written` flags are equal: accumulate when they hold a product already.
template <typename Visit>
void for_each_run_of_state(std::span<const int64_t> chunk, const std::vector<uint8_t>& written,
                           Visit&& visit) {
  for_each_run(chunk, [&](size_t first, size_t count) {
    for (size_t j = first; j < first + count;) {
      const uint8_t state = written[size_t(chunk[j])];
      size_t end = j + 1;
      while (end < first + count && written[size_t(chunk[end])] == state) ++end;
      visit(j, end - j, state != 0);
      j = end;
    }
  });
}

// The rows of the key blocks that no query visited: their gradients are zero.
template <typename C>
void zero_unwritten_blocks(const BlockSparseArgs& args, const std::vector<uint8_t>& written,
                           C* grad_k, C* grad_v) {
  const int64_t block = args.block;
  for (int64_t kb = 0; kb < args.blocks; ++kb) {
    if (written[size_t(kb)]) continue;
    std::fill(grad_k + kb * block * args.E, grad_k + (kb + 1) * block * args.E, C(0));
    std::fill(grad_v + kb * block * args.Ev, grad_v + (kb + 1) * block * args.Ev, C(0));
  }
}

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

template <typename T>
void backward_chunk(const BlockSparseArgs& args, const EntryData<T>& entry, const RowGroup& group,
                    std::span<const int64_t> chunk, const compute_type<T>* q_tile,
                    const compute_type<T>* grad_out_tile,
                    SparseBackwardScratch<compute_type<T>>& scratch) {
  using C = compute_type<T>;
  const int64_t rows = group.count * args.block, E = args.E, Ev = args.Ev, ld = chunk_width(args);
  const int64_t cols = int64_t(chunk.size()) * args.block;
  C* weights = scratch.weights.data();
  block_scores(rows, E, C(args.scale), q_tile, entry.keys_t, args.block, chunk,
               scratch.keys_t.data(), weights, ld);
  mask_group_scores(args, entry.row_offsets, entry.columns, entry.b, group, chunk, weights, ld);
  weights_from_scores(rows, cols, ld, entry.lse + group.first * args.block, weights);
  // dP = grad_out v^T; dS = P * (dP - D)
  C* grad_scores = scratch.grad_scores.data();
  block_scores(rows, Ev, C(1), grad_out_tile, entry.values_t, args.block, chunk,
               scratch.values_t.data(), grad_scores, ld);
  if (scratch.delta_from_chunk)
    row_dots(rows, cols, weights, ld, grad_scores, ld, scratch.row_delta.data());
  for (int64_t i = 0; i < rows; ++i) {
    const C delta = scratch.row_delta[size_t(i)];
    C* grad = grad_scores + i * ld;
    const C* weight = weights + i * ld;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) grad[j] = weight[j] * (grad[j] - delta);
  }
  // Per run j of consecutive key blocks: grad_v_j += P_j^T grad_out, grad_k_j += scale dS_j^T q
  // (into the entry's rows directly), grad_q += scale dS_j k_j (k read in place, or widened).
  const C* keys = rows_of_blocks(entry.k, E, args.block, chunk, scratch.keys);
  // grad_q's rows are the group's own, written by the first product and added to after.
  chunk_rows_product(rows, E, args.block, C(args.scale), grad_scores, ld, keys, entry.k, chunk,
                     scratch.grad_q_written, entry.grad_q + group.first * args.block * E, E);
  scratch.grad_q_written = true;
  // grad_k and grad_v per run of blocks that are all written or all not (written to 0 + x
  // and added to x give the same bits).
  for_each_run_of_state(chunk, scratch.written, [&](size_t j, size_t count, bool accumulate) {
    const int64_t offset = int64_t(j) * args.block, key0 = chunk[j] * args.block;
    const int64_t keys_in_run = int64_t(count) * args.block;
    tile_product(keys_in_run, Ev, rows, C(1), weights + offset, 1, ld, grad_out_tile, Ev,
                 accumulate, entry.grad_v + key0 * Ev, Ev);
    tile_product(keys_in_run, E, rows, C(args.scale), grad_scores + offset, 1, ld, q_tile, E,
                 accumulate, entry.grad_k + key0 * E, E);
    for (size_t i = j; i < j + count; ++i) scratch.written[size_t(chunk[i])] = 1;
  });
}

template <typename T>
void backward_row_group(const BlockSparseArgs& args, const EntryData<T>& entry,
                        const RowGroup& group, SparseBackwardScratch<compute_type<T>>& scratch) {
  using C = compute_type<T>;
  const int64_t rows = group.count * args.block, E = args.E, Ev = args.Ev;
  const int64_t l0 = group.first * args.block;
  const std::span<const int64_t> active = group.columns;
  const C* q_tile = widened(entry.q + l0 * E, rows * E, scratch.q);
  const C* grad_out_tile = widened(entry.grad_out + l0 * Ev, rows * Ev, scratch.grad_out);
  scratch.row_delta.resize(size_t(rows));
  const size_t per_chunk = size_t(chunk_blocks(args));
  // A group of one chunk (the sliding windows' rows, 4-5 blocks) takes D from P * dP in cache
  // and never reads `out`: those rows were a cold read of T x Ev values per call, a twentieth
  // of the window modes' backward, for 16 dot products of 64 values a row block.
  scratch.delta_from_chunk = active.size() <= per_chunk;
  if (!scratch.delta_from_chunk) {
    const C* out_tile = widened(entry.out + l0 * Ev, rows * Ev, scratch.out);
    row_dots(rows, Ev, grad_out_tile, Ev, out_tile, Ev, scratch.row_delta.data());
  }
  scratch.grad_q_written = false;
  for (size_t first = 0; first < active.size(); first += per_chunk) {
    backward_chunk<T>(args, entry, group,
                      active.subspan(first, std::min(active.size() - first, per_chunk)), q_tile,
                      grad_out_tile, scratch);
  }
  if (!scratch.grad_q_written)
    std::fill(entry.grad_q + l0 * E, entry.grad_q + (l0 + rows) * E, C(0));
}

}  // namespace

void CpuBackend::block_sparse_attention_backward(const BlockSparseArgs& args, const Tensor& q,
                                                 const Tensor& k, const Tensor& v,
                                                 const Tensor& row_offsets, const Tensor& columns,
                                                 const Tensor& out, const Tensor& lse,
                                                 const Tensor& grad_out, const Tensor& grad_q,
                                                 const Tensor& grad_k, const Tensor& grad_v) {
  dispatch_floating(q.dtype(), "block_sparse_attention_backward", [&]<typename T>() {
    using C = compute_type<T>;
    const Tensor keys_t =
        empty({args.batch, args.E, args.T}, {.dtype = lse.dtype(), .tag = MemoryTag::other});
    const Tensor values_t =
        empty({args.batch, args.Ev, args.T}, {.dtype = lse.dtype(), .tag = MemoryTag::other});
    const int64_t* offsets = row_offsets.data_ptr<int64_t>();
    const int64_t* column_data = columns.data_ptr<int64_t>();
    const int64_t T_len = args.T, E = args.E, Ev = args.Ev;
#pragma omp parallel num_threads(block_sparse_threads(args, columns.numel()))
    {
      SparseBackwardScratch<C> scratch;
      scratch.size_for(args);
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < args.batch; ++b) {
        transpose_rows_of(k.data_ptr<T>(), T_len, E, args.block, b, keys_t.data_ptr<C>());
        transpose_rows_of(v.data_ptr<T>(), T_len, Ev, args.block, b, values_t.data_ptr<C>());
        const EntryData<T> entry{q.data_ptr<T>() + b * T_len * E,
                                 k.data_ptr<T>() + b * T_len * E,
                                 out.data_ptr<T>() + b * T_len * Ev,
                                 grad_out.data_ptr<T>() + b * T_len * Ev,
                                 keys_t.data_ptr<C>() + b * E * T_len,
                                 values_t.data_ptr<C>() + b * Ev * T_len,
                                 lse.data_ptr<C>() + b * T_len,
                                 grad_q.data_ptr<C>() + b * T_len * E,
                                 grad_k.data_ptr<C>() + b * T_len * E,
                                 grad_v.data_ptr<C>() + b * T_len * Ev,
                                 offsets,
                                 column_data,
                                 b};
        scratch.written.assign(size_t(args.blocks), 0);
        for (int64_t leader = 0; leader < args.blocks; leader += rows_per_group(args)) {
          for_each_group(args, offsets, column_data, b, leader, [&](const RowGroup& group) {
            backward_row_group<T>(args, entry, group, scratch);
          });
        }
        zero_unwritten_blocks(args, scratch.written, entry.grad_k, entry.grad_v);
      }
    }
  });
}

}  // namespace zt::cpu
