// CUDA fused attention, backward (flash-attention 2's): one block per (batch entry, key tile),
// one thread per key, so each thread owns its key's rows of grad_k and grad_v (accumulated in
// shared memory, no atomics). The block walks the query tiles that can see its keys, recomputes
// each weight P = exp(score - lse) from q, k and the saved log-sum-exp, and with
// D = rowsum(grad_out * out) (a first kernel) forms dS = P * (dP - D). grad_q gathers
// contributions from every key tile, so each warp adds its 32 keys' share with one atomic add
// per element (grad_q is in f32, or f64 for f64 inputs).
#include "core/factory.h"
#include "cuda/attention_common.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

using namespace attention;

constexpr int kQueryRows = 16;

// delta[row] = grad_out[row] . out[row], one warp per row.
template <typename T>
__global__ void attention_delta_kernel(const T* grad_out, const T* out, int64_t rows, int64_t Ev,
                                       compute_t<T>* delta) {
  using C = compute_t<T>;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp; row < rows;
       row += warps) {
    C sum = 0;
    for (int64_t d = lane; d < Ev; d += kWarp) {
      sum += load_compute(grad_out[row * Ev + d]) * load_compute(out[row * Ev + d]);
    }
    sum = warp_sum(sum);
    if (lane == 0) delta[row] = sum;
  }
}

// Shared memory for `keys` keys: k, grad_k [keys][E+1], v, grad_v [keys][Ev+1], q [16][E],
// grad_out [16][Ev], dS [keys]. Padding by one keeps a warp's 32 key rows on 32 banks.
template <typename C>
size_t backward_shared_bytes(const AttentionArgs& args, int64_t keys) {
  const size_t E = size_t(args.E), Ev = size_t(args.Ev);
  return sizeof(C) *
         (size_t(keys) * (2 * (E + 1) + 2 * (Ev + 1)) + kQueryRows * (E + Ev) + size_t(keys));
}

struct BackwardPointers {
  const void *q, *k, *v, *mask, *grad_out, *lse, *delta;
  void *grad_q, *grad_k, *grad_v;
  int mask_bytes;
};

template <typename T>
__global__ void attention_backward_kernel(AttentionArgs args, BackwardPointers p,
                                          int64_t key_tiles) {
  using C = compute_t<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int64_t E = args.E, Ev = args.Ev, L = args.L, S = args.S, keys = blockDim.x;
  C* k_tile = reinterpret_cast<C*>(shared_bytes);
  C* grad_k_tile = k_tile + keys * (E + 1);
  C* v_tile = grad_k_tile + keys * (E + 1);
  C* grad_v_tile = v_tile + keys * (Ev + 1);
  C* q_tile = grad_v_tile + keys * (Ev + 1);
  C* grad_out_tile = q_tile + kQueryRows * E;
  C* grad_scores = grad_out_tile + kQueryRows * Ev;
  const int64_t b = blockIdx.x / key_tiles, s0 = (blockIdx.x % key_tiles) * keys;
  const int j = threadIdx.x, warp = j / kWarp;
  const int64_t s = s0 + j;
  const bool valid = s < S;
  const T* q = static_cast<const T*>(p.q) + b * L * E;
  const T* grad_out = static_cast<const T*>(p.grad_out) + b * L * Ev;
  const C* lse = static_cast<const C*>(p.lse) + b * L;
  const C* delta = static_cast<const C*>(p.delta) + b * L;
  C* grad_q = static_cast<C*>(p.grad_q) + b * L * E;
  for (int64_t e = 0; e < E; ++e) {
    k_tile[j * (E + 1) + e] =
        valid ? load_compute(static_cast<const T*>(p.k)[(b * S + s) * E + e]) : C(0);
    grad_k_tile[j * (E + 1) + e] = C(0);
  }
  for (int64_t d = 0; d < Ev; ++d) {
    v_tile[j * (Ev + 1) + d] =
        valid ? load_compute(static_cast<const T*>(p.v)[(b * S + s) * Ev + d]) : C(0);
    grad_v_tile[j * (Ev + 1) + d] = C(0);
  }
  const void* plane = mask_plane(args, p.mask, p.mask_bytes, b);
  const C inverse_keep = C(1.0 / (1.0 - args.dropout_p));
  // Under the causal rule no query before s0 sees these keys.
  const int64_t first_query = args.causal ? (s0 / kQueryRows) * kQueryRows : 0;
  for (int64_t l0 = first_query; l0 < L; l0 += kQueryRows) {
    const int64_t rows = L - l0 < kQueryRows ? L - l0 : kQueryRows;
    __syncthreads();  // the previous query tile is no longer read
    for (int64_t at = threadIdx.x; at < rows * E; at += blockDim.x) {
      q_tile[at] = load_compute(q[l0 * E + at]);
    }
    for (int64_t at = threadIdx.x; at < rows * Ev; at += blockDim.x) {
      grad_out_tile[at] = load_compute(grad_out[l0 * Ev + at]);
    }
    __syncthreads();
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t l = l0 + i;
      const C row_lse = lse[l];
      C grad_score = 0;
      if (valid && row_lse != minus_infinity<C>()) {
        C dot = 0, grad_weight = 0;
        for (int64_t e = 0; e < E; ++e) dot += q_tile[i * E + e] * k_tile[j * (E + 1) + e];
        for (int64_t d = 0; d < Ev; ++d) {
          grad_weight += grad_out_tile[i * Ev + d] * v_tile[j * (Ev + 1) + d];
        }
        const C weight = exp_of(masked_score<T>(args, plane, l, s, dot) - row_lse);
        C dropped = weight;
        if (args.dropout_p > 0.0) {
          const bool keep = attention_dropout_keeps(args, b, l, s, std::is_same_v<C, double>);
          dropped = keep ? weight * inverse_keep : C(0);
          grad_weight = keep ? grad_weight * inverse_keep : C(0);
        }
        for (int64_t d = 0; d < Ev; ++d) {
          grad_v_tile[j * (Ev + 1) + d] += dropped * grad_out_tile[i * Ev + d];
        }
        grad_score = weight * (grad_weight - delta[l]) * C(args.scale);
        for (int64_t e = 0; e < E; ++e)
          grad_k_tile[j * (E + 1) + e] += grad_score * q_tile[i * E + e];
      }
      grad_scores[j] = grad_score;
      __syncwarp();
      const int lane = j % kWarp;
      for (int64_t e = lane; e < E; e += kWarp) {
        C share = 0;
        for (int w = 0; w < kWarp; ++w) {
          share += grad_scores[warp * kWarp + w] * k_tile[(warp * kWarp + w) * (E + 1) + e];
        }
        if (share != C(0)) atomicAdd(grad_q + l * E + e, share);
      }
      __syncwarp();
    }
  }
  if (!valid) return;
  C* grad_k = static_cast<C*>(p.grad_k) + (b * S + s) * E;
  C* grad_v = static_cast<C*>(p.grad_v) + (b * S + s) * Ev;
  for (int64_t e = 0; e < E; ++e) grad_k[e] = grad_k_tile[j * (E + 1) + e];
  for (int64_t d = 0; d < Ev; ++d) grad_v[d] = grad_v_tile[j * (Ev + 1) + d];
}

// The most keys per block (a multiple of 32, at most 128) whose shared memory fits the device.
template <typename C>
int64_t keys_per_block(const AttentionArgs& args, int device) {
  int limit = 0;
  ZT_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  for (int64_t keys : {128, 64}) {
    if (backward_shared_bytes<C>(args, keys) <= size_t(limit)) return keys;
  }
  return kWarp;
}

}  // namespace

void CudaBackend::attention_backward(const AttentionArgs& args, const Tensor& q, const Tensor& k,
                                     const Tensor& v, const Tensor& mask, const Tensor& out,
                                     const Tensor& lse, const Tensor& grad_out,
                                     const Tensor& grad_q, const Tensor& grad_k,
                                     const Tensor& grad_v) {
  KernelScope scope(q.device());
  ZT_CUDA_CHECK(cudaMemsetAsync(grad_q.raw_data(), 0, grad_q.nbytes(), scope.stream()));
  ZT_CUDA_CHECK(cudaMemsetAsync(grad_k.raw_data(), 0, grad_k.nbytes(), scope.stream()));
  ZT_CUDA_CHECK(cudaMemsetAsync(grad_v.raw_data(), 0, grad_v.nbytes(), scope.stream()));
  if (args.L == 0 || args.S == 0) return;
  dispatch_floating(q.dtype(), "attention_backward", [&]<typename T>() {
    using C = compute_t<T>;
    const int64_t rows = args.batch * args.L;
    Tensor delta =
        empty({rows}, {.dtype = lse.dtype(), .device = q.device(), .tag = MemoryTag::other});
    attention_delta_kernel<T><<<scope.blocks_for(rows * kWarp), kThreads, 0, scope.stream()>>>(
        static_cast<const T*>(grad_out.raw_data()), static_cast<const T*>(out.raw_data()), rows,
        args.Ev, static_cast<C*>(delta.raw_data()));
    ZT_CUDA_CHECK_LAUNCH();
    const int64_t keys = keys_per_block<C>(args, scope.index());
    const int64_t key_tiles = (args.S + keys - 1) / keys;
    const size_t shared = backward_shared_bytes<C>(args, keys);
    allow_shared_memory(attention_backward_kernel<T>, shared, scope.index(),
                        "scaled_dot_product_attention_backward", args);
    BackwardPointers pointers{q.raw_data(),
                              k.raw_data(),
                              v.raw_data(),
                              mask.defined() ? mask.raw_data() : nullptr,
                              grad_out.raw_data(),
                              lse.raw_data(),
                              delta.raw_data(),
                              grad_q.raw_data(),
                              grad_k.raw_data(),
                              grad_v.raw_data(),
                              mask.defined() ? int(dtype_size(mask.dtype())) : 0};
    attention_backward_kernel<T>
        <<<one_block_per_row(args.batch * key_tiles, "scaled_dot_product_attention_backward"),
           unsigned(keys), shared, scope.stream()>>>(args, pointers, key_tiles);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace zt::cuda
