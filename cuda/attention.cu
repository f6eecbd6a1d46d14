// CUDA fused attention, forward: one block per (batch entry, tile of 16 queries), 4 warps of 4
// query rows each. The block walks 32-key tiles staged in shared memory (lane j scores key j),
// keeping per row the running max and sum of the online softmax in registers and the output
// accumulator in shared memory, rescaled whenever the max grows. Only the output and the
// per-row log-sum-exp reach global memory. Numerics follow the CPU kernel
// (core/cpu/cpu_attention.cpp): compute in f32 (f64 for f64), fully masked rows give 0 / -inf.
#include "core/factory.h"
#include "cuda/attention_common.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

using namespace attention;

constexpr int kForwardWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kQueryRows = kForwardWarps * kRowsPerWarp;

// Shared memory: q [16][E+1], k [32][E+1], v [32][Ev], accumulator [16][Ev], weights [4][32].
// Rows of q and k are padded by one so that the 32 lanes reading 32 keys hit 32 banks.
template <typename C>
size_t forward_shared_bytes(const AttentionArgs& args) {
  const size_t padded = size_t(args.E + 1);
  return sizeof(C) * (kQueryRows * padded + kWarp * padded + kWarp * size_t(args.Ev) +
                      kQueryRows * size_t(args.Ev) + kForwardWarps * kWarp);
}

template <typename T>
__global__ void attention_forward_kernel(AttentionArgs args, const T* q, const T* k, const T* v,
                                         const void* mask, int mask_bytes, T* out,
                                         compute_t<T>* lse, int64_t query_tiles) {
  using C = compute_t<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int64_t E = args.E, Ev = args.Ev, L = args.L, S = args.S, padded = E + 1;
  C* q_tile = reinterpret_cast<C*>(shared_bytes);
  C* k_tile = q_tile + kQueryRows * padded;
  C* v_tile = k_tile + kWarp * padded;
  C* accumulator = v_tile + kWarp * Ev;
  C* weights = accumulator + kQueryRows * Ev;
  const int64_t b = blockIdx.x / query_tiles, l0 = (blockIdx.x % query_tiles) * kQueryRows;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t rows = L - l0 < kQueryRows ? L - l0 : kQueryRows;
  for (int64_t at = threadIdx.x; at < rows * E; at += blockDim.x) {
    q_tile[(at / E) * padded + at % E] = load_compute(q[(b * L + l0) * E + at]);
  }
  for (int64_t at = threadIdx.x; at < kQueryRows * Ev; at += blockDim.x) accumulator[at] = C(0);
  C row_max[kRowsPerWarp], row_sum[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    row_max[r] = minus_infinity<C>();
    row_sum[r] = C(0);
  }
  const void* plane = mask_plane(args, mask, mask_bytes, b);
  const C inverse_keep = C(1.0 / (1.0 - args.dropout_p));
  const int64_t key_limit = args.causal ? (S < l0 + rows ? S : l0 + rows) : S;
  for (int64_t s0 = 0; s0 < key_limit; s0 += kWarp) {
    const int64_t cols = key_limit - s0 < kWarp ? key_limit - s0 : kWarp;
    __syncthreads();  // every warp is done with the previous tiles
    for (int64_t at = threadIdx.x; at < cols * E; at += blockDim.x) {
      k_tile[(at / E) * padded + at % E] = load_compute(k[(b * S + s0) * E + at]);
    }
    for (int64_t at = threadIdx.x; at < cols * Ev; at += blockDim.x) {
      v_tile[at] = load_compute(v[(b * S + s0) * Ev + at]);
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t i = warp * kRowsPerWarp + r, l = l0 + i;
      if (i >= rows) continue;  // the same for the whole warp
      C score = minus_infinity<C>();
      if (lane < cols) {
        C dot = 0;
        for (int64_t e = 0; e < E; ++e) dot += q_tile[i * padded + e] * k_tile[lane * padded + e];
        score = masked_score<T>(args, plane, l, s0 + lane, dot);
      }
      const C new_max = fmax(row_max[r], warp_max(score));
      C weight = 0, correction = 1;
      if (new_max != minus_infinity<C>()) {
        correction = exp_of(row_max[r] - new_max);
        weight = exp_of(score - new_max);
        row_sum[r] = row_sum[r] * correction + warp_sum(weight);
        row_max[r] = new_max;
      }
      if (args.dropout_p > 0.0 && lane < cols) {
        const bool keep = attention_dropout_keeps(args, b, l, s0 + lane, std::is_same_v<C, double>);
        weight = keep ? weight * inverse_keep : C(0);
      }
      weights[warp * kWarp + lane] = weight;
      __syncwarp();
      for (int64_t d = lane; d < Ev; d += kWarp) {
        C total = accumulator[i * Ev + d] * correction;
        for (int64_t j = 0; j < cols; ++j) total += weights[warp * kWarp + j] * v_tile[j * Ev + d];
        accumulator[i * Ev + d] = total;
      }
      __syncwarp();
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = warp * kRowsPerWarp + r;
    if (i >= rows) continue;
    const C sum = row_sum[r];
    const C inverse = sum > C(0) ? C(1) / sum : C(0);
    for (int64_t d = lane; d < Ev; d += kWarp) {
      out[(b * L + l0 + i) * Ev + d] = store_compute<T>(accumulator[i * Ev + d] * inverse);
    }
    if (lane == 0) {
      lse[b * L + l0 + i] = sum > C(0) ? row_max[r] + log(sum) : minus_infinity<C>();
    }
  }
}

}  // namespace

void CudaBackend::attention_forward(const AttentionArgs& args, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const Tensor& mask, const Tensor& out,
                                    const Tensor& lse) {
  KernelScope scope(q.device());
  dispatch_floating(q.dtype(), "attention_forward", [&]<typename T>() {
    using C = compute_t<T>;
    const int64_t query_tiles = (args.L + kQueryRows - 1) / kQueryRows;
    const size_t shared = forward_shared_bytes<C>(args);
    allow_shared_memory(attention_forward_kernel<T>, shared, scope.index(),
                        "scaled_dot_product_attention", args);
    attention_forward_kernel<T>
        <<<one_block_per_row(args.batch * query_tiles, "scaled_dot_product_attention"),
           kForwardWarps * kWarp, shared, scope.stream()>>>(
            args, static_cast<const T*>(q.raw_data()), static_cast<const T*>(k.raw_data()),
            static_cast<const T*>(v.raw_data()), mask.defined() ? mask.raw_data() : nullptr,
            mask.defined() ? int(dtype_size(mask.dtype())) : 0, static_cast<T*>(out.raw_data()),
            static_cast<C*>(lse.raw_data()), query_tiles);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace zt::cuda
