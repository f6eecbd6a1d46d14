// CPU block-sparse attention, forward: one task per entry, or per (entry, group of row blocks)
// when entries are few, in parallel. Row groups walk only their active key blocks, in chunks
// of about kKeyTile keys,
// with the online softmax of the dense kernel (running max and sum per row, the output
// accumulator rescaled when the max grows). Work and memory follow the active blocks; nothing
// of size T^2 exists. Each task writes its own rows, so results do not depend on thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
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
struct SparseForwardScratch {
  std::vector<C> keys, values, scores;  // one chunk's packed keys, widened values, scores
};

// One row group between its first chunk and its last: its running max and sum per row, and the
// output accumulator, in cache, which the first chunk's product writes; the last step writes
// the normalised rows out (write_scaled_rows: past the cache in f32).
template <typename C>
struct ForwardRows {
  RowGroup group;
  std::vector<C> q, accumulator, row_max, row_sum, inverse_sum;
  const C* q_tile = nullptr;
  C* sums = nullptr;
};

// Folds one chunk of scores into the running statistics of its rows, leaving exp(score - max).
template <typename C>
void online_softmax_chunk(int64_t cols, int64_t ld, int64_t Ev, C* scores, ForwardRows<C>& rows) {
  constexpr C kMinusInf = -std::numeric_limits<C>::infinity();
  for (size_t i = 0; i < rows.row_max.size(); ++i) {
    C* row = scores + int64_t(i) * ld;
    C& running_max = rows.row_max[i];
    const C new_max = std::max(running_max, row_max(row, cols));
    if (new_max == kMinusInf) {
      std::fill(row, row + cols, C(0));
      continue;
    }
    const C correction = std::exp(running_max - new_max);
    const C chunk_sum = exp_shifted(row, cols, new_max);
    rows.row_sum[i] = rows.row_sum[i] * correction + chunk_sum;
    // A row that saw nothing yet has an accumulator that the chunk's product overwrites (the
    // first chunk's) or that holds zeros: nothing to rescale.
    const bool accumulated = running_max != kMinusInf;
    running_max = new_max;
    if (accumulated && correction != C(1)) scale_row(rows.sums + int64_t(i) * Ev, Ev, correction);
  }
}

struct SparseInputs {
  const int64_t* row_offsets;
  const int64_t* columns;
};

// The forward of one entry's row groups (sweep_entry's visitor): q, v and out are the entry's
// rows, `keys` its transposed keys.
template <typename T>
struct ForwardVisitor {
  using C = compute_type<T>;
  const BlockSparseArgs& args;
  SparseInputs index;
  const T *q, *v;
  T* out;
  C* lse;
  int64_t b;
  TransposedBlocks<T, C>& keys;
  SparseForwardScratch<C>& scratch;
  std::vector<ForwardRows<C>>& states;  // by sweep id; 0 is reused group after group

  void begin(size_t id, const RowGroup& group) {
    if (states.size() <= id) states.resize(id + 1);
    ForwardRows<C>& rows = states[id];
    const int64_t count = group.count * args.block, l0 = group.first * args.block;
    rows.group = group;
    rows.q_tile = widened(q + l0 * args.E, count * args.E, rows.q);
    rows.accumulator.resize(size_t(count * args.Ev));
    rows.sums = rows.accumulator.data();
    rows.row_max.assign(size_t(count), -std::numeric_limits<C>::infinity());
    rows.row_sum.assign(size_t(count), C(0));
  }

  void chunk(size_t id, std::span<const int64_t> chunk, size_t first) {
    ForwardRows<C>& rows = states[id];
    const int64_t count = rows.group.count * args.block, ld = chunk_width(args);
    const int64_t cols = int64_t(chunk.size()) * args.block;
    scratch.scores.resize(size_t(count * ld));
    scratch.keys.resize(size_t(args.E * ld));
    block_scores(count, args.E, C(args.scale), rows.q_tile, keys.with(chunk), args.block,
                 scratch.keys.data(), scratch.scores.data(), ld);
    mask_group_scores(args, index.row_offsets, index.columns, b, rows.group, chunk,
                      scratch.scores.data(), ld);
    online_softmax_chunk(cols, ld, args.Ev, scratch.scores.data(), rows);
    // The weights times the chunk's value rows, read in place (f32, f64) or widened once per
    // chunk (16-bit); the first chunk writes the accumulator, later ones add to it.
    const C* values = rows_of_blocks(v, args.Ev, args.block, chunk, scratch.values);
    chunk_rows_product(count, args.Ev, args.block, C(1), scratch.scores.data(), ld, values, v,
                       chunk, first > 0, rows.sums, args.Ev,
                       causal_diagonal(args, rows.group, chunk));
  }

  void finish(size_t id) {
    ForwardRows<C>& rows = states[id];
    const int64_t count = rows.group.count * args.block, l0 = rows.group.first * args.block;
    const int64_t Ev = args.Ev;
    if (rows.group.columns.empty()) std::fill(rows.sums, rows.sums + count * Ev, C(0));
    rows.inverse_sum.resize(size_t(count));
    for (int64_t i = 0; i < count; ++i) {
      const C sum = rows.row_sum[size_t(i)];
      rows.inverse_sum[size_t(i)] = sum > C(0) ? C(1) / sum : C(0);
      lse[l0 + i] = sum > C(0) ? rows.row_max[size_t(i)] + std::log(sum)
                               : -std::numeric_limits<C>::infinity();
    }
    if constexpr (std::is_same_v<T, C>) {
      write_scaled_rows(count, Ev, rows.sums, Ev, rows.inverse_sum.data(), out + l0 * Ev, Ev);
    } else {
      for (int64_t i = 0; i < count; ++i) {
        const C inverse = rows.inverse_sum[size_t(i)];
        std::transform(rows.sums + i * Ev, rows.sums + (i + 1) * Ev, out + (l0 + i) * Ev,
                       [inverse](C x) { return T(x * inverse); });
      }
    }
  }
};

}  // namespace

void CpuBackend::block_sparse_attention_forward(const BlockSparseArgs& args, const Tensor& q,
                                                const Tensor& k, const Tensor& v,
                                                const Tensor& row_offsets, const Tensor& columns,
                                                const Tensor& out, const Tensor& lse) {
  dispatch_floating(q.dtype(), "block_sparse_attention_forward", [&]<typename T>() {
    using C = compute_type<T>;
    const SparseInputs index{row_offsets.data_ptr<int64_t>(), columns.data_ptr<int64_t>()};
    const int threads = block_sparse_threads(args, columns.numel());
    const int64_t T_len = args.T, E = args.E, Ev = args.Ev;
    // With at least two entries per thread, one task per entry: its keys transposed block by
    // block as chunks need them, into its thread's ring (TransposedBlocks), and its long rows
    // run during the sweep over the others (sweep_entry). With fewer, one task per (entry,
    // group of row blocks), handed out one at a time since rows have different numbers of
    // blocks, over keys transposed up front. A row's arithmetic is the same on both schedules.
    const bool per_entry = threads == 1 || args.batch >= 2 * threads;
    const int team = per_entry ? int(std::min<int64_t>(threads, args.batch)) : threads;
    const int64_t per_chunk = chunk_blocks(args);
    const int64_t ring_size = TransposedBlocks<T, C>::ring_size(E, args.block, per_chunk);
    const Tensor keys_transposed =
        per_entry ? empty({team, ring_size}, {.dtype = lse.dtype(), .tag = MemoryTag::other})
                  : empty({args.batch, E, T_len}, {.dtype = lse.dtype(), .tag = MemoryTag::other});
    auto visitor_of = [&](int64_t b, TransposedBlocks<T, C>& keys, SparseForwardScratch<C>& scratch,
                          std::vector<ForwardRows<C>>& states) {
      return ForwardVisitor<T>{args,
                               index,
                               q.data_ptr<T>() + b * T_len * E,
                               v.data_ptr<T>() + b * T_len * Ev,
                               out.data_ptr<T>() + b * T_len * Ev,
                               lse.data_ptr<C>() + b * T_len,
                               b,
                               keys,
                               scratch,
                               states};
    };
#pragma omp parallel num_threads(team)
    {
      SparseForwardScratch<C> scratch;
      std::vector<ForwardRows<C>> states;
      if (per_entry) {
        TransposedBlocks<T, C> keys(
            E, args.block, per_chunk,
            keys_transposed.data_ptr<C>() + int64_t(thread_index()) * ring_size);
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < args.batch; ++b) {
          keys.read_rows(k.data_ptr<T>() + b * T_len * E);
          sweep_entry(args, index.row_offsets, index.columns, b,
                      visitor_of(b, keys, scratch, states));
        }
      } else {
#pragma omp for schedule(static)
        for (int64_t b = 0; b < args.batch; ++b) {
          transpose_rows_of(k.data_ptr<T>(), T_len, E, args.block, b,
                            keys_transposed.data_ptr<C>());
        }
        TransposedBlocks<T, C> keys(E, args.block, per_chunk, nullptr);
        const int64_t per_group = rows_per_group(args);
        const int64_t leaders = (args.blocks + per_group - 1) / per_group;
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < args.batch * leaders; ++task) {
          const int64_t b = task / leaders, leader = task % leaders * per_group;
          keys.read_plane(keys_transposed.data_ptr<C>() + b * E * T_len);
          auto visitor = visitor_of(b, keys, scratch, states);
          for_each_group(args, index.row_offsets, index.columns, b, leader,
                         [&](const RowGroup& group) { visit_whole_group(args, group, visitor); });
        }
      }
      fence_streamed_rows();
    }
  });
}

}  // namespace zt::cpu
