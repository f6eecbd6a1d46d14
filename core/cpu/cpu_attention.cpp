// CPU fused attention, forward: one task per (batch, query tile), in parallel. Each task walks
// the key tiles its queries may see, keeping per row the running max m and the running sum of
// exp(score - m) (the online softmax), rescaling its output accumulator whenever m grows. The
// scores exist one [query tile, key tile] block at a time; the output and the row's
// log-sum-exp m + log(sum) are written once at the end. A row with nothing to attend (every
// key masked) gets output 0 and log-sum-exp -inf, as PyTorch returns for such rows.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_attention_tiles.h"
#include "core/cpu/cpu_backend.h"
#include "core/parallel.h"

namespace zt::cpu {

using namespace attention_tiles;

namespace {

template <typename C>
struct ForwardScratch {
  std::vector<C> q, v;  // widened tiles (16-bit inputs only)
  std::vector<C> scores, accumulator, row_max, row_sum;
};

// Folds one score tile into the running statistics of its rows and turns it into the weights
// (dropout applied) that multiply the value tile.
template <typename C>
void online_softmax_step(const AttentionArgs& args, int64_t b, int64_t l0, int64_t rows, int64_t s0,
                         int64_t cols, ForwardScratch<C>& scratch) {
  constexpr C kMinusInf = -std::numeric_limits<C>::infinity();
  for (int64_t i = 0; i < rows; ++i) {
    C* row = scratch.scores.data() + i * kKeyTile;
    const C tile_max = row_max(row, cols);
    C& running_max = scratch.row_max[size_t(i)];
    const C new_max = std::max(running_max, tile_max);
    if (new_max == kMinusInf) {  // nothing visible yet in this row
      std::fill(row, row + cols, C(0));
      continue;
    }
    const C correction = std::exp(running_max - new_max);  // 0 while the row was empty
    const C tile_sum = exp_shifted(row, cols, new_max);
    scratch.row_sum[size_t(i)] = scratch.row_sum[size_t(i)] * correction + tile_sum;
    running_max = new_max;
    if (correction != C(1))
      scale_row(scratch.accumulator.data() + i * args.Ev, args.Ev, correction);
    if (args.dropout_p > 0.0) apply_dropout(args, b, l0 + i, s0, cols, row);
  }
}

template <typename T>
void forward_tile(const AttentionArgs& args, const T* q, const compute_type<T>* k_transposed,
                  const T* v, const MaskPlane& plane, T* out, compute_type<T>* lse, int64_t b,
                  int64_t l0, ForwardScratch<compute_type<T>>& scratch) {
  using C = compute_type<T>;
  const int64_t rows = std::min(kQueryTile, args.L - l0);
  const int64_t E = args.E, Ev = args.Ev, S = args.S;
  const C* q_tile = widened(q + (b * args.L + l0) * E, rows * E, scratch.q);
  scratch.accumulator.assign(size_t(rows * Ev), C(0));
  scratch.row_max.assign(size_t(rows), -std::numeric_limits<C>::infinity());
  scratch.row_sum.assign(size_t(rows), C(0));
  scratch.scores.resize(size_t(kQueryTile * kKeyTile));
  const int64_t key_limit = args.causal ? std::min(S, l0 + rows) : S;
  for (int64_t s0 = 0; s0 < key_limit; s0 += kKeyTile) {
    const int64_t cols = std::min(kKeyTile, key_limit - s0);
    const C* v_tile = widened(v + (b * S + s0) * Ev, cols * Ev, scratch.v);
    tile_product(rows, cols, E, C(args.scale), q_tile, E, 1,
                 transposed_tile(k_transposed, args, E, b, s0), kKeyTile, false,
                 scratch.scores.data(), kKeyTile);
    apply_masks<T>(args, plane, l0, rows, s0, cols, scratch.scores.data(), kKeyTile);
    online_softmax_step(args, b, l0, rows, s0, cols, scratch);
    tile_product(rows, Ev, cols, C(1), scratch.scores.data(), kKeyTile, 1, v_tile, Ev, true,
                 scratch.accumulator.data(), Ev);
  }
  for (int64_t i = 0; i < rows; ++i) {
    const C sum = scratch.row_sum[size_t(i)];
    const C inverse = sum > C(0) ? C(1) / sum : C(0);
    const C* accumulator = scratch.accumulator.data() + i * Ev;
    T* out_row = out + (b * args.L + l0 + i) * Ev;
    for (int64_t d = 0; d < Ev; ++d) out_row[d] = T(accumulator[d] * inverse);
    lse[b * args.L + l0 + i] = sum > C(0) ? scratch.row_max[size_t(i)] + std::log(sum)
                                          : -std::numeric_limits<C>::infinity();
  }
}

}  // namespace

void CpuBackend::attention_forward(const AttentionArgs& args, const Tensor& q, const Tensor& k,
                                   const Tensor& v, const Tensor& mask, const Tensor& out,
                                   const Tensor& lse) {
  dispatch_floating(q.dtype(), "attention_forward", [&]<typename T>() {
    using C = compute_type<T>;
    const int64_t query_tiles = (args.L + kQueryTile - 1) / kQueryTile;
    const void* mask_data = mask.defined() ? mask.raw_data() : nullptr;
    const size_t mask_bytes = mask.defined() ? dtype_size(mask.dtype()) : 0;
    const Tensor k_transposed = transposed_keys_workspace(args.batch, args.S, args.E, lse.dtype());
    // First the keys transposed, one batch entry per task; then one task per (batch, query
    // tile), handed out one at a time: under the causal rule the later tiles of a sequence see
    // more keys. Tasks are independent, so the result does not depend on the thread count. One
    // team of threads for both: on a loaded machine each team costs a wait for its slowest
    // thread.
#pragma omp parallel num_threads(threads_for(args))
    {
#pragma omp for schedule(static)
      for (int64_t b = 0; b < args.batch; ++b) {
        transpose_keys_of(k.data_ptr<T>(), args.S, args.E, b, k_transposed.data_ptr<C>());
      }
      ForwardScratch<C> scratch;
#pragma omp for schedule(dynamic, 1)
      for (int64_t task = 0; task < args.batch * query_tiles; ++task) {
        const int64_t b = task / query_tiles, l0 = (task % query_tiles) * kQueryTile;
        forward_tile<T>(args, q.data_ptr<T>(), k_transposed.data_ptr<C>(), v.data_ptr<T>(),
                        mask_plane(args, mask_data, mask_bytes, b), out.data_ptr<T>(),
                        lse.data_ptr<C>(), b, l0, scratch);
      }
    }
  });
}

}  // namespace zt::cpu
