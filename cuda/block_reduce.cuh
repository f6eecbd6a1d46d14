// Reducing one value per thread of a block to one value per block, for any partial type (sums,
// moments, extrema with their index) and combine function. The tree order is fixed by the
// block size alone, so results are the same on every run.
// Invariant: every thread of the block calls it (it synchronises the block).
#pragma once

#include <cstdint>

namespace zt::cuda {

// Threads per block of every row kernel (reductions, softmax, layer norm, cross entropy).
inline constexpr int kRowThreads = 256;

// Returns the combined value to every thread of a block of kRowThreads threads.
template <typename P, typename Combine>
__device__ P block_reduce(P value, const Combine& combine) {
  // Raw storage: partial types with default member initialisers cannot be __shared__ directly.
  __shared__ alignas(16) unsigned char raw[kRowThreads * sizeof(P)];
  __shared__ alignas(16) unsigned char result_raw[sizeof(P)];
  P* shared = reinterpret_cast<P*>(raw);
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int half = kRowThreads / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) {
      shared[threadIdx.x] = combine(shared[threadIdx.x], shared[threadIdx.x + half]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *reinterpret_cast<P*>(result_raw) = shared[0];
  __syncthreads();
  P result = *reinterpret_cast<P*>(result_raw);
  __syncthreads();  // the buffers may be reused by the caller's next block_reduce
  return result;
}

}  // namespace zt::cuda
