// CPU fused attention, backward (flash-attention 2's): one task per batch entry (one head of
// one sequence), in parallel, so each task owns its rows of grad_k and grad_v. For each query
// tile it recomputes the weights P = exp(score - lse) tile by tile from q, k and the saved
// log-sum-exp, and with D = rowsum(grad_out * out):
//   grad_v += dropout(P)^T grad_out,  dP = dropout'(grad_out v^T),  dS = P * (dP - D),
//   grad_q += scale * dS k,  grad_k += scale * dS^T q.
// Memory beyond the gradients: a few tiles per thread, whatever the sequence lengths.
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

// k and v in transposed blocks of kKeyTile keys (transposed_keys_workspace).
template <typename C>
struct KeysTransposed {
  const C* k;
  const C* v;
};

template <typename C>
struct BackwardScratch {
  std::vector<C> q, k, out, grad_out;  // widened tiles (16-bit inputs only)
  std::vector<C> weights, dropped, grad_scores, row_delta, grad_q;
};

// The tile's weights P from its scores (in scratch.weights) and the rows' log-sum-exp; the
// dropped-out weights that multiplied v in the forward go to scratch.dropped.
template <typename C>
void recompute_weights(const AttentionArgs& args, const C* lse, int64_t b, int64_t l0, int64_t rows,
                       int64_t s0, int64_t cols, BackwardScratch<C>& scratch) {
  for (int64_t i = 0; i < rows; ++i) {
    C* row = scratch.weights.data() + i * kKeyTile;
    const C row_lse = lse[i];
    if (row_lse == -std::numeric_limits<C>::infinity()) {
      std::fill(row, row + cols, C(0));  // a row with nothing to attend has no gradient
    } else {
      exp_shifted(row, cols, row_lse);
    }
    if (args.dropout_p > 0.0) {
      C* dropped = scratch.dropped.data() + i * kKeyTile;
      std::copy(row, row + cols, dropped);
      apply_dropout(args, b, l0 + i, s0, cols, dropped);
    }
  }
}

// dS = P * (dP - D) from dP in scratch.grad_scores (dropout's scaling applied to dP first).
template <typename C>
void score_gradients(const AttentionArgs& args, int64_t b, int64_t l0, int64_t rows, int64_t s0,
                     int64_t cols, BackwardScratch<C>& scratch) {
  for (int64_t i = 0; i < rows; ++i) {
    C* grad = scratch.grad_scores.data() + i * kKeyTile;
    const C* weights = scratch.weights.data() + i * kKeyTile;
    if (args.dropout_p > 0.0) apply_dropout(args, b, l0 + i, s0, cols, grad);
    const C delta = scratch.row_delta[size_t(i)];
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) grad[j] = weights[j] * (grad[j] - delta);
  }
}

template <typename T>
void backward_query_tile(const AttentionArgs& args, const T* q, const T* k,
                         const KeysTransposed<compute_type<T>>& keys_transposed,
                         const MaskPlane& plane, const T* out, const compute_type<T>* lse,
                         const T* grad_out, compute_type<T>* grad_q, compute_type<T>* grad_k,
                         compute_type<T>* grad_v, int64_t b, int64_t l0,
                         BackwardScratch<compute_type<T>>& scratch) {
  using C = compute_type<T>;
  const int64_t rows = std::min(kQueryTile, args.L - l0);
  const int64_t E = args.E, Ev = args.Ev, S = args.S;
  const int64_t row0 = b * args.L + l0;
  const C* q_tile = widened(q + row0 * E, rows * E, scratch.q);
  const C* out_tile = widened(out + row0 * Ev, rows * Ev, scratch.out);
  const C* grad_out_tile = widened(grad_out + row0 * Ev, rows * Ev, scratch.grad_out);
  scratch.row_delta.assign(size_t(rows), C(0));
  for (int64_t i = 0; i < rows; ++i) {
    C delta = 0;
    for (int64_t d = 0; d < Ev; ++d) delta += grad_out_tile[i * Ev + d] * out_tile[i * Ev + d];
    scratch.row_delta[size_t(i)] = delta;
  }
  scratch.grad_q.assign(size_t(rows * E), C(0));
  const int64_t key_limit = args.causal ? std::min(S, l0 + rows) : S;
  for (int64_t s0 = 0; s0 < key_limit; s0 += kKeyTile) {
    const int64_t cols = std::min(kKeyTile, key_limit - s0);
    const C* k_tile = widened(k + (b * S + s0) * E, cols * E, scratch.k);
    C* weights = scratch.weights.data();
    tile_product(rows, cols, E, C(args.scale), q_tile, E, 1,
                 transposed_tile(keys_transposed.k, args, E, b, s0), kKeyTile, false, weights,
                 kKeyTile);
    apply_masks<T>(args, plane, l0, rows, s0, cols, weights, kKeyTile);
    recompute_weights(args, lse + row0, b, l0, rows, s0, cols, scratch);
    const C* dropped = args.dropout_p > 0.0 ? scratch.dropped.data() : weights;
    // grad_v += dropout(P)^T grad_out and dP = grad_out v^T
    tile_product(cols, Ev, rows, C(1), dropped, 1, kKeyTile, grad_out_tile, Ev, true,
                 grad_v + (b * S + s0) * Ev, Ev);
    tile_product(rows, cols, Ev, C(1), grad_out_tile, Ev, 1,
                 transposed_tile(keys_transposed.v, args, Ev, b, s0), kKeyTile, false,
                 scratch.grad_scores.data(), kKeyTile);
    score_gradients(args, b, l0, rows, s0, cols, scratch);
    // grad_q += scale dS k and grad_k += scale dS^T q
    tile_product(rows, E, cols, C(args.scale), scratch.grad_scores.data(), kKeyTile, 1, k_tile, E,
                 true, scratch.grad_q.data(), E);
    tile_product(cols, E, rows, C(args.scale), scratch.grad_scores.data(), 1, kKeyTile, q_tile, E,
                 true, grad_k + (b * S + s0) * E, E);
  }
  std::copy(scratch.grad_q.begin(), scratch.grad_q.end(), grad_q + row0 * E);
}

}  // namespace

void CpuBackend::attention_backward(const AttentionArgs& args, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const Tensor& mask, const Tensor& out,
                                    const Tensor& lse, const Tensor& grad_out, const Tensor& grad_q,
                                    const Tensor& grad_k, const Tensor& grad_v) {
  dispatch_floating(q.dtype(), "attention_backward", [&]<typename T>() {
    using C = compute_type<T>;
    const void* mask_data = mask.defined() ? mask.raw_data() : nullptr;
    const size_t mask_bytes = mask.defined() ? dtype_size(mask.dtype()) : 0;
    C* grad_k_data = grad_k.data_ptr<C>();
    C* grad_v_data = grad_v.data_ptr<C>();
    const Tensor k_transposed = transposed_keys_workspace(args.batch, args.S, args.E, lse.dtype());
    const Tensor v_transposed = transposed_keys_workspace(args.batch, args.S, args.Ev, lse.dtype());
    const KeysTransposed<C> keys_transposed{k_transposed.data_ptr<C>(), v_transposed.data_ptr<C>()};
    // One task per batch entry, which transposes its own keys and values: its key and value
    // gradients are written by no other task, so the sums over query tiles run in one order on
    // any thread count.
#pragma omp parallel num_threads(threads_for(args))
    {
      BackwardScratch<C> scratch;
      scratch.weights.resize(size_t(kQueryTile * kKeyTile));
      scratch.dropped.resize(scratch.weights.size());
      scratch.grad_scores.resize(scratch.weights.size());
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < args.batch; ++b) {
        std::fill(grad_k_data + b * args.S * args.E, grad_k_data + (b + 1) * args.S * args.E, C(0));
        std::fill(grad_v_data + b * args.S * args.Ev, grad_v_data + (b + 1) * args.S * args.Ev,
                  C(0));
        transpose_keys_of(k.data_ptr<T>(), args.S, args.E, b, k_transposed.data_ptr<C>());
        transpose_keys_of(v.data_ptr<T>(), args.S, args.Ev, b, v_transposed.data_ptr<C>());
        const MaskPlane plane = mask_plane(args, mask_data, mask_bytes, b);
        for (int64_t l0 = 0; l0 < args.L; l0 += kQueryTile) {
          backward_query_tile<T>(args, q.data_ptr<T>(), k.data_ptr<T>(), keys_transposed, plane,
                                 out.data_ptr<T>(), lse.data_ptr<C>(), grad_out.data_ptr<T>(),
                                 grad_q.data_ptr<C>(), grad_k_data, grad_v_data, b, l0, scratch);
        }
      }
    }
  });
}

}  // namespace zt::cpu
