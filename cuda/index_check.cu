// The device-side index range check (see index_check.h).
#include "core/factory.h"
#include "core/index_geometry.h"
#include "cuda/index_check.h"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

__global__ void first_bad_index_kernel(const int64_t* indices, int64_t count, int64_t size,
                                       bool has_allowed, int64_t allowed,
                                       unsigned long long* first_bad) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) {
    int64_t index = indices[i];
    if (has_allowed && index == allowed) continue;
    if (!index_in_range(index, size)) atomicMin(first_bad, (unsigned long long)i);
  }
}

}  // namespace

std::optional<BadIndex> find_bad_index(const Tensor& indices, int64_t size,
                                       std::optional<int64_t> allowed) {
  const int64_t count = indices.numel();
  if (count == 0) return std::nullopt;
  KernelScope scope(indices.device());
  Tensor slot =
      empty({1}, {.dtype = DType::i64, .device = indices.device(), .tag = MemoryTag::other});
  unsigned long long none = (unsigned long long)count;
  ZT_CUDA_CHECK(
      cudaMemcpyAsync(slot.raw_data(), &none, sizeof none, cudaMemcpyHostToDevice, scope.stream()));
  const int64_t* index_data = static_cast<const int64_t*>(indices.raw_data());
  first_bad_index_kernel<<<scope.blocks_for(count), kThreads, 0, scope.stream()>>>(
      index_data, count, size, allowed.has_value(), allowed.value_or(0),
      static_cast<unsigned long long*>(slot.raw_data()));
  ZT_CUDA_CHECK_LAUNCH();
  unsigned long long first = 0;
  ZT_CUDA_CHECK(cudaMemcpyAsync(&first, slot.raw_data(), sizeof first, cudaMemcpyDeviceToHost,
                                scope.stream()));
  ZT_CUDA_CHECK(cudaStreamSynchronize(scope.stream()));
  if (first >= (unsigned long long)count) return std::nullopt;
  BadIndex bad{int64_t(first), 0};
  ZT_CUDA_CHECK(
      cudaMemcpy(&bad.value, index_data + first, sizeof bad.value, cudaMemcpyDeviceToHost));
  return bad;
}

}  // namespace zt::cuda
