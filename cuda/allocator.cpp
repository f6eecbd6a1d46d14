// The caching device allocator (see allocator.h for the invariants).
#include "cuda/allocator.h"

#include <bit>
#include <memory>
#include <string>
#include <vector>

#include "cuda/check.h"
#include "cuda/device.h"

namespace zt::cuda {

namespace {
constexpr size_t kSmallGranularity = 512;
constexpr size_t kLargeThreshold = size_t(1) << 20;

std::string mib(size_t bytes) {
  return std::to_string(double(bytes) / double(1 << 20)) + " MiB";
}
}  // namespace

size_t CudaAllocator::block_bytes(size_t bytes) {
  if (bytes < kLargeThreshold) {
    size_t rounded = (bytes + kSmallGranularity - 1) / kSmallGranularity * kSmallGranularity;
    return rounded == 0 ? kSmallGranularity : rounded;
  }
  size_t power = std::bit_floor(bytes);
  size_t step = power / 8;
  return (bytes + step - 1) / step * step;
}

void* CudaAllocator::allocate(size_t bytes, MemoryTag tag) {
  require_device(index_);
  accounting_.record_allocation(bytes, tag);  // throws past the limit, with the breakdown
  size_t rounded = block_bytes(bytes);
  {
    std::lock_guard lock(mutex_);
    auto found = cached_.find(rounded);
    if (found != cached_.end()) {
      void* ptr = found->second;
      cached_.erase(found);
      cached_bytes_ -= rounded;
      return ptr;
    }
  }
  DeviceGuard guard(index_);
  void* ptr = nullptr;
  cudaError_t status = cudaMalloc(&ptr, rounded);
  if (status == cudaErrorMemoryAllocation) {  // the cache may hold what the device now lacks
    (void)cudaGetLastError();
    empty_cache();
    status = cudaMalloc(&ptr, rounded);
  }
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    accounting_.record_free(bytes, tag);
    size_t free_bytes = 0, total_bytes = 0;
    (void)cudaMemGetInfo(&free_bytes, &total_bytes);
    throw OutOfMemoryError("out of memory on cuda:" + std::to_string(index_) + ": cudaMalloc of " +
                           mib(rounded) + " for " + std::string(memory_tag_name(tag)) +
                           " failed (" + cudaGetErrorString(status) + "; device free " +
                           mib(free_bytes) + " of " + mib(total_bytes) +
                           "); live: " + accounting_.stats().breakdown());
  }
  return ptr;
}

void CudaAllocator::deallocate(void* ptr, size_t bytes, MemoryTag tag) {
  // No CUDA call here: a tensor freed during static destruction, after the runtime has shut
  // down, must not fail. The block goes back to the cache.
  size_t rounded = block_bytes(bytes);
  {
    std::lock_guard lock(mutex_);
    cached_.emplace(rounded, ptr);
    cached_bytes_ += rounded;
  }
  accounting_.record_free(bytes, tag);
}

void CudaAllocator::empty_cache() {
  std::multimap<size_t, void*> released;
  {
    std::lock_guard lock(mutex_);
    released.swap(cached_);
    cached_bytes_ = 0;
  }
  if (released.empty()) return;
  DeviceGuard guard(index_);
  ZT_CUDA_CHECK(cudaDeviceSynchronize());  // queued kernels may still use the blocks
  for (const auto& [size, ptr] : released) ZT_CUDA_CHECK(cudaFree(ptr));
}

size_t CudaAllocator::cached_bytes() const {
  std::lock_guard lock(mutex_);
  return cached_bytes_;
}

CudaAllocator& device_allocator(int index) {
  require_device(index);
  static std::mutex mutex;
  static std::vector<CudaAllocator*> allocators(size_t(device_count()), nullptr);
  std::lock_guard lock(mutex);
  CudaAllocator*& slot = allocators[size_t(index)];
  if (slot == nullptr) slot = new CudaAllocator(index);  // never destroyed: outlives tensors
  return *slot;
}

}  // namespace zt::cuda
