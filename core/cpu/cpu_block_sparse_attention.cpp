// CPU block-sparse attention, forward: one task per (entry, group of row blocks), in parallel.
// A task walks only its rows' active key blocks, in chunks of about kKeyTile keys,
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
  std::vector<C> q, keys, values, scores, accumulator, row_max, row_sum;
};

// Folds one chunk of scores into the running statistics of its rows, leaving exp(score - max).
template <typename C>
void online_softmax_chunk(int64_t rows, int64_t cols, int64_t ld, int64_t Ev, C* accumulator,
                          SparseForwardScratch<C>& scratch) {
  constexpr C kMinusInf = -std::numeric_limits<C>::infinity();
  for (int64_t i = 0; i < rows; ++i) {
    C* row = scratch.scores.data() + i * ld;
    C& running_max = scratch.row_max[size_t(i)];
    const C new_max = std::max(running_max, row_max(row, cols));
    if (new_max == kMinusInf) {
      std::fill(row, row + cols, C(0));
      continue;
    }
    const C correction = std::exp(running_max - new_max);
    const C chunk_sum = exp_shifted(row, cols, new_max);
    scratch.row_sum[size_t(i)] = scratch.row_sum[size_t(i)] * correction + chunk_sum;
    // A row that saw nothing yet has an accumulator that the chunk's product overwrites (the
    // first chunk's) or that holds zeros: nothing to rescale.
    const bool accumulated = running_max != kMinusInf;
    running_max = new_max;
    if (accumulated && correction != C(1)) scale_row(accumulator + i * Ev, Ev, correction);
  }
}

struct SparseInputs {
  const int64_t* row_offsets;
  const int64_t* columns;
};

template <typename T>
void forward_row_block(const BlockSparseArgs& args, const SparseInputs& index, const T* q,
                       const compute_type<T>* keys_transposed, const T* v, T* out,
                       compute_type<T>* lse, int64_t b, const RowGroup& group,
                       SparseForwardScratch<compute_type<T>>& scratch) {
  using C = compute_type<T>;
  const int64_t rows = group.count * args.block, E = args.E, Ev = args.Ev, T_len = args.T;
  const int64_t l0 = group.first * args.block, ld = chunk_width(args);
  const int64_t per_chunk = chunk_blocks(args);
  const C* q_tile = widened(q + (b * T_len + l0) * E, rows * E, scratch.q);
  // The output rows themselves when they have the compute type (a copy of them out, a scalar
  // loop, was a twentieth of the window modes' time), else a buffer rounded out at the end.
  // The first chunk's product writes it.
  T* out_rows = out + (b * T_len + l0) * Ev;
  C* accumulator = nullptr;
  if constexpr (std::is_same_v<T, C>) {
    accumulator = out_rows;
  } else {
    scratch.accumulator.resize(size_t(rows * Ev));
    accumulator = scratch.accumulator.data();
  }
  scratch.row_max.assign(size_t(rows), -std::numeric_limits<C>::infinity());
  scratch.row_sum.assign(size_t(rows), C(0));
  scratch.scores.resize(size_t(rows * ld));
  scratch.keys.resize(size_t(E * ld));
  scratch.values.resize(size_t(ld * Ev));
  const std::span<const int64_t> active = group.columns;
  for (size_t first = 0; first < active.size(); first += size_t(per_chunk)) {
    const std::span<const int64_t> chunk =
        active.subspan(first, std::min(active.size() - first, size_t(per_chunk)));
    const int64_t cols = int64_t(chunk.size()) * args.block;
    block_scores(rows, E, C(args.scale), q_tile, keys_transposed + b * E * T_len, args.block, chunk,
                 scratch.keys.data(), scratch.scores.data(), ld);
    mask_group_scores(args, index.row_offsets, index.columns, b, group, chunk,
                      scratch.scores.data(), ld);
    online_softmax_chunk(rows, cols, ld, Ev, accumulator, scratch);
    // The weights times the chunk's value rows, read in place (f32, f64) or widened once per
    // chunk (16-bit); the first chunk writes the accumulator, later ones add to it.
    const C* values = rows_of_blocks(v + b * T_len * Ev, Ev, args.block, chunk, scratch.values);
    chunk_rows_product(rows, Ev, args.block, C(1), scratch.scores.data(), ld, values,
                       v + b * T_len * Ev, chunk, first > 0, accumulator, Ev);
  }
  if (active.empty()) std::fill(accumulator, accumulator + rows * Ev, C(0));
  for (int64_t i = 0; i < rows; ++i) {
    const C sum = scratch.row_sum[size_t(i)];
    const C inverse = sum > C(0) ? C(1) / sum : C(0);
    scale_row(accumulator + i * Ev, Ev, inverse);
    if constexpr (!std::is_same_v<T, C>) {
      std::transform(accumulator + i * Ev, accumulator + (i + 1) * Ev, out_rows + i * Ev,
                     [](C x) { return T(x); });
    }
    lse[b * T_len + l0 + i] = sum > C(0) ? scratch.row_max[size_t(i)] + std::log(sum)
                                         : -std::numeric_limits<C>::infinity();
  }
}

}  // namespace

void CpuBackend::block_sparse_attention_forward(const BlockSparseArgs& args, const Tensor& q,
                                                const Tensor& k, const Tensor& v,
                                                const Tensor& row_offsets, const Tensor& columns,
                                                const Tensor& out, const Tensor& lse) {
  dispatch_floating(q.dtype(), "block_sparse_attention_forward", [&]<typename T>() {
    using C = compute_type<T>;
    const Tensor keys_transposed =
        empty({args.batch, args.E, args.T}, {.dtype = lse.dtype(), .tag = MemoryTag::other});
    const SparseInputs index{row_offsets.data_ptr<int64_t>(), columns.data_ptr<int64_t>()};
    // The keys transposed first, one entry per task; then one task per (entry, group of
    // row blocks), handed out one at a time since rows have different numbers of blocks.
#pragma omp parallel num_threads(block_sparse_threads(args, columns.numel()))
    {
#pragma omp for schedule(static)
      for (int64_t b = 0; b < args.batch; ++b) {
        transpose_rows_of(k.data_ptr<T>(), args.T, args.E, args.block, b,
                          keys_transposed.data_ptr<C>());
      }
      SparseForwardScratch<C> scratch;
      const int64_t per_group = rows_per_group(args);
      const int64_t leaders = (args.blocks + per_group - 1) / per_group;
#pragma omp for schedule(dynamic, 1)
      for (int64_t task = 0; task < args.batch * leaders; ++task) {
        const int64_t b = task / leaders, leader = task % leaders * per_group;
        for_each_group(
            args, index.row_offsets, index.columns, b, leader, [&](const RowGroup& group) {
              forward_row_block<T>(args, index, q.data_ptr<T>(), keys_transposed.data_ptr<C>(),
                                   v.data_ptr<T>(), out.data_ptr<T>(), lse.data_ptr<C>(), b, group,
                                   scratch);
            });
      }
    }
  });
}

}  // namespace zt::cpu
