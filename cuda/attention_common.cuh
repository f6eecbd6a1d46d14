// What the CUDA attention kernels (attention.cu, attention_backward.cu) share: warp
// reductions, the masked score of one (query, key) position by the rules of
// core/attention_geometry.h, and the launch-time check of dynamic shared memory. One lane of a
// warp always holds one key of the tile (32 keys per warp).
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/attention_geometry.h"
#include "cuda/check.h"
#include "cuda/dtype.cuh"

namespace zt::cuda::attention {

inline constexpr int kWarp = 32;

// expf in single precision (the compute type of f32 and 16-bit inputs), exp in double.
template <typename C>
__device__ inline C exp_of(C value) {
  if constexpr (std::is_same_v<C, float>) {
    return expf(value);
  } else {
    return ::exp(value);
  }
}

template <typename C>
__device__ inline C warp_max(C value) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    value = fmax(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  return value;
}

template <typename C>
__device__ inline C warp_sum(C value) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;
}

template <typename C>
__device__ inline C minus_infinity() {
  return -C(INFINITY);
}

// The scaled, masked score of query l against key s from q_row . k_row (q_row with stride 1,
// k_row with stride 1, `dot` already computed): -inf where the causal rule or a u8 mask forbids
// it, the additive mask added otherwise.
template <typename T, typename C>
__device__ inline C masked_score(const AttentionArgs& args, const void* mask_plane, int64_t l,
                                 int64_t s, C dot) {
  if (s >= attention_key_end(args, l)) return minus_infinity<C>();
  C score = dot * C(args.scale);
  if (args.mask == AttentionMask::none) return score;
  const int64_t at = l * args.mask_stride_l + s * args.mask_stride_s;
  if (args.mask == AttentionMask::keep_u8) {
    return static_cast<const uint8_t*>(mask_plane)[at] != 0 ? score : minus_infinity<C>();
  }
  return score + load_compute(static_cast<const T*>(mask_plane)[at]);
}

// The mask plane of batch entry b (null without a mask).
inline __device__ const void* mask_plane(const AttentionArgs& args, const void* mask,
                                         int element_bytes, int64_t b) {
  if (mask == nullptr) return nullptr;
  return static_cast<const char*>(mask) + attention_mask_batch_offset(args, b) * element_bytes;
}

// Lets `kernel` use `bytes` of dynamic shared memory, or throws naming the sizes that need
// more than the device has.
template <typename Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes, int device, const char* op,
                         const AttentionArgs& args) {
  int limit = 0;
  ZT_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (bytes > size_t(limit)) {
    throw std::invalid_argument(
        std::string(op) + " on CUDA: embedding sizes E=" + std::to_string(args.E) +
        " and Ev=" + std::to_string(args.Ev) + " need " + std::to_string(bytes) +
        " bytes of shared memory per block, the device has " + std::to_string(limit));
  }
  ZT_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

}  // namespace zt::cuda::attention
