// CUDA block-sparse attention, forward and backward. Forward: one block per (entry, row block,
// tile of 16 query rows), 4 warps of 4 rows; the block walks only its row block's active key
// blocks from the CSR index, 32 keys at a time staged in shared memory (lane j scores key j),
// with the online softmax of cuda/attention.cu. Backward: one block per (entry, row block, 16
// rows); each lane takes one key of the active blocks, grad_q stays in shared memory (the
// block owns its rows) and grad_k, grad_v are added with atomics (zeroed first). Numerics
// follow the CPU kernels (core/cpu/cpu_block_sparse_attention*.cpp).
#include "core/factory.h"
#include "cuda/attention_common.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

using namespace attention;

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kQueryRows = kWarps * kRowsPerWarp;

struct SparseIndex {
  const int64_t* row_offsets;
  const int64_t* columns;
};

int64_t row_tiles_of(const BlockSparseArgs& args) {
  return (args.block + kQueryRows - 1) / kQueryRows;
}

template <typename C>
size_t forward_shared_bytes(const BlockSparseArgs& args) {
  const size_t padded = size_t(args.E + 1);
  return sizeof(C) * (kQueryRows * padded + kWarp * padded + kWarp * size_t(args.Ev) +
                      kQueryRows * size_t(args.Ev) + kWarps * kWarp);
}

// The entry, row block and first query of this block of threads.
struct RowTile {
  int64_t b, row_block, l0, rows;
};
__device__ inline RowTile row_tile_of(const BlockSparseArgs& args, int64_t row_tiles) {
  RowTile tile;
  const int64_t per_entry = args.blocks * row_tiles;
  tile.b = blockIdx.x / per_entry;
  tile.row_block = (blockIdx.x % per_entry) / row_tiles;
  const int64_t within = (blockIdx.x % row_tiles) * kQueryRows;
  tile.l0 = tile.row_block * args.block + within;
  tile.rows = args.block - within < kQueryRows ? args.block - within : kQueryRows;
  return tile;
}

template <typename T>
__global__ void block_sparse_forward_kernel(BlockSparseArgs args, SparseIndex index, const T* q,
                                            const T* k, const T* v, T* out, compute_t<T>* lse,
                                            int64_t row_tiles) {
  using C = compute_t<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int64_t E = args.E, Ev = args.Ev, T_len = args.T, padded = E + 1;
  C* q_tile = reinterpret_cast<C*>(shared_bytes);
  C* k_tile = q_tile + kQueryRows * padded;
  C* v_tile = k_tile + kWarp * padded;
  C* accumulator = v_tile + kWarp * Ev;
  C* weights = accumulator + kQueryRows * Ev;
  const RowTile tile = row_tile_of(args, row_tiles);
  const int64_t b = tile.b, l0 = tile.l0, rows = tile.rows;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  for (int64_t at = threadIdx.x; at < rows * E; at += blockDim.x) {
    q_tile[(at / E) * padded + at % E] = load_compute(q[(b * T_len + l0) * E + at]);
  }
  for (int64_t at = threadIdx.x; at < kQueryRows * Ev; at += blockDim.x) accumulator[at] = C(0);
  C row_max[kRowsPerWarp], row_sum[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    row_max[r] = minus_infinity<C>();
    row_sum[r] = C(0);
  }
  const int64_t slot = block_sparse_row_slot(args, b, tile.row_block);
  for (int64_t n = index.row_offsets[slot]; n < index.row_offsets[slot + 1]; ++n) {
    const int64_t key_begin = index.columns[n] * args.block, key_end = key_begin + args.block;
    for (int64_t s0 = key_begin; s0 < key_end; s0 += kWarp) {
      const int64_t cols = key_end - s0 < kWarp ? key_end - s0 : kWarp;
      __syncthreads();
      for (int64_t at = threadIdx.x; at < cols * E; at += blockDim.x) {
        k_tile[(at / E) * padded + at % E] = load_compute(k[(b * T_len + s0) * E + at]);
      }
      for (int64_t at = threadIdx.x; at < cols * Ev; at += blockDim.x) {
        v_tile[at] = load_compute(v[(b * T_len + s0) * Ev + at]);
      }
      __syncthreads();
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const int64_t i = warp * kRowsPerWarp + r, l = l0 + i;
        if (i >= rows) continue;  // the same for the whole warp
        C score = minus_infinity<C>();
        if (lane < cols && !(args.causal && s0 + lane > l)) {
          C dot = 0;
          for (int64_t e = 0; e < E; ++e) dot += q_tile[i * padded + e] * k_tile[lane * padded + e];
          score = dot * C(args.scale);
        }
        const C new_max = fmax(row_max[r], warp_max(score));
        C weight = 0, correction = 1;
        if (new_max != minus_infinity<C>()) {
          correction = exp_of(row_max[r] - new_max);
          weight = exp_of(score - new_max);
          row_sum[r] = row_sum[r] * correction + warp_sum(weight);
          row_max[r] = new_max;
        }
        weights[warp * kWarp + lane] = weight;
        __syncwarp();
        for (int64_t d = lane; d < Ev; d += kWarp) {
          C total = accumulator[i * Ev + d] * correction;
          for (int64_t j = 0; j < cols; ++j)
            total += weights[warp * kWarp + j] * v_tile[j * Ev + d];
          accumulator[i * Ev + d] = total;
        }
        __syncwarp();
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = warp * kRowsPerWarp + r;
    if (i >= rows) continue;
    const C sum = row_sum[r];
    const C inverse = sum > C(0) ? C(1) / sum : C(0);
    for (int64_t d = lane; d < Ev; d += kWarp) {
      out[(b * T_len + l0 + i) * Ev + d] = store_compute<T>(accumulator[i * Ev + d] * inverse);
    }
    if (lane == 0)
      lse[b * T_len + l0 + i] = sum > C(0) ? row_max[r] + log(sum) : minus_infinity<C>();
  }
}

struct BackwardPointers {
  const void *q, *k, *v, *out, *grad_out, *lse;
  void *grad_q, *grad_k, *grad_v;
};

// One warp per query row of the tile; lane j takes key s0 + j of an active block.
template <typename T>
__global__ void block_sparse_backward_kernel(BlockSparseArgs args, SparseIndex index,
                                             BackwardPointers p, int64_t row_tiles) {
  using C = compute_t<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int64_t E = args.E, Ev = args.Ev, T_len = args.T;
  C* grad_q_tile = reinterpret_cast<C*>(shared_bytes);  // [16][E]
  C* delta = grad_q_tile + kQueryRows * E;              // [16]
  const T* q = static_cast<const T*>(p.q);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  const T* grad_out = static_cast<const T*>(p.grad_out);
  const C* lse = static_cast<const C*>(p.lse);
  C* grad_k = static_cast<C*>(p.grad_k);
  C* grad_v = static_cast<C*>(p.grad_v);
  const RowTile tile = row_tile_of(args, row_tiles);
  const int64_t b = tile.b;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  for (int64_t at = threadIdx.x; at < kQueryRows * E; at += blockDim.x) grad_q_tile[at] = C(0);
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = warp * kRowsPerWarp + r, row = b * T_len + tile.l0 + i;
    if (i >= tile.rows) continue;
    C sum = 0;
    for (int64_t d = lane; d < Ev; d += kWarp) {
      sum += load_compute(grad_out[row * Ev + d]) *
             load_compute(static_cast<const T*>(p.out)[row * Ev + d]);
    }
    sum = warp_sum(sum);
    if (lane == 0) delta[i] = sum;
  }
  __syncthreads();
  const int64_t slot = block_sparse_row_slot(args, b, tile.row_block);
  for (int64_t n = index.row_offsets[slot]; n < index.row_offsets[slot + 1]; ++n) {
    const int64_t key_begin = index.columns[n] * args.block, key_end = key_begin + args.block;
    for (int64_t s0 = key_begin; s0 < key_end; s0 += kWarp) {
      const int64_t s = s0 + lane;
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const int64_t i = warp * kRowsPerWarp + r, l = tile.l0 + i, row = b * T_len + l;
        if (i >= tile.rows) continue;
        const bool live = s < key_end && !(args.causal && s > l) && lse[row] != minus_infinity<C>();
        C weight = 0, grad_score = 0;
        if (live) {
          C dot = 0, grad_weight = 0;
          for (int64_t e = 0; e < E; ++e) {
            dot += load_compute(q[row * E + e]) * load_compute(k[(b * T_len + s) * E + e]);
          }
          weight = exp_of(dot * C(args.scale) - lse[row]);
          for (int64_t d = 0; d < Ev; ++d) {
            grad_weight +=
                load_compute(grad_out[row * Ev + d]) * load_compute(v[(b * T_len + s) * Ev + d]);
          }
          grad_score = weight * (grad_weight - delta[i]) * C(args.scale);
          for (int64_t d = 0; d < Ev; ++d) {
            atomicAdd(&grad_v[(b * T_len + s) * Ev + d],
                      weight * load_compute(grad_out[row * Ev + d]));
          }
          for (int64_t e = 0; e < E; ++e) {
            atomicAdd(&grad_k[(b * T_len + s) * E + e], grad_score * load_compute(q[row * E + e]));
          }
        }
        for (int64_t e = 0; e < E; ++e) {
          const C share =
              warp_sum(live ? grad_score * load_compute(k[(b * T_len + s) * E + e]) : C(0));
          if (lane == 0) grad_q_tile[i * E + e] += share;
        }
      }
    }
  }
  __syncthreads();
  for (int64_t at = threadIdx.x; at < tile.rows * E; at += blockDim.x) {
    static_cast<C*>(p.grad_q)[(b * T_len + tile.l0) * E + at] = grad_q_tile[at];
  }
}

SparseIndex index_of(const Tensor& row_offsets, const Tensor& columns) {
  return {static_cast<const int64_t*>(row_offsets.raw_data()),
          static_cast<const int64_t*>(columns.raw_data())};
}

}  // namespace

void CudaBackend::block_sparse_attention_forward(const BlockSparseArgs& args, const Tensor& q,
                                                 const Tensor& k, const Tensor& v,
                                                 const Tensor& row_offsets, const Tensor& columns,
                                                 const Tensor& out, const Tensor& lse) {
  KernelScope scope(q.device());
  dispatch_floating(q.dtype(), "block_sparse_attention_forward", [&]<typename T>() {
    using C = compute_t<T>;
    const int64_t row_tiles = row_tiles_of(args);
    const size_t shared = forward_shared_bytes<C>(args);
    AttentionArgs sizes;  // what allow_shared_memory names in its message
    sizes.E = args.E;
    sizes.Ev = args.Ev;
    allow_shared_memory(block_sparse_forward_kernel<T>, shared, scope.index(),
                        "block_sparse_attention", sizes);
    block_sparse_forward_kernel<T>
        <<<one_block_per_row(args.batch * args.blocks * row_tiles, "block_sparse_attention"),
           kWarps * kWarp, shared, scope.stream()>>>(
            args, index_of(row_offsets, columns), static_cast<const T*>(q.raw_data()),
            static_cast<const T*>(k.raw_data()), static_cast<const T*>(v.raw_data()),
            static_cast<T*>(out.raw_data()), static_cast<C*>(lse.raw_data()), row_tiles);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::block_sparse_attention_backward(const BlockSparseArgs& args, const Tensor& q,
                                                  const Tensor& k, const Tensor& v,
                                                  const Tensor& row_offsets, const Tensor& columns,
                                                  const Tensor& out, const Tensor& lse,
                                                  const Tensor& grad_out, const Tensor& grad_q,
                                                  const Tensor& grad_k, const Tensor& grad_v) {
  KernelScope scope(q.device());
  ZT_CUDA_CHECK(cudaMemsetAsync(grad_k.raw_data(), 0, grad_k.nbytes(), scope.stream()));
  ZT_CUDA_CHECK(cudaMemsetAsync(grad_v.raw_data(), 0, grad_v.nbytes(), scope.stream()));
  dispatch_floating(q.dtype(), "block_sparse_attention_backward", [&]<typename T>() {
    using C = compute_t<T>;
    const int64_t row_tiles = row_tiles_of(args);
    const size_t shared = sizeof(C) * size_t(kQueryRows * (args.E + 1));
    AttentionArgs sizes;
    sizes.E = args.E;
    sizes.Ev = args.Ev;
    allow_shared_memory(block_sparse_backward_kernel<T>, shared, scope.index(),
                        "block_sparse_attention_backward", sizes);
    const BackwardPointers pointers{q.raw_data(),      k.raw_data(),        v.raw_data(),
                                    out.raw_data(),    grad_out.raw_data(), lse.raw_data(),
                                    grad_q.raw_data(), grad_k.raw_data(),   grad_v.raw_data()};
    block_sparse_backward_kernel<T><<<one_block_per_row(args.batch * args.blocks * row_tiles,
                                                        "block_sparse_attention_backward"),
                                      kWarps * kWarp, shared, scope.stream()>>>(
        args, index_of(row_offsets, columns), pointers, row_tiles);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace zt::cuda
