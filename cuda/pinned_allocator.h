// The caching pinned (page-locked) host allocator, registered as pinned_host_allocator() (see
// core/allocator.h): staging buffers for device tensors that go through host memory (MPI
// without CUDA awareness) are allocated through it, over and over at the same sizes, and each
// cudaHostAlloc costs far more than the copy it serves. Freed blocks are kept by size class
// (CudaAllocator's classes) and handed out again; the cache is given back when a cudaHostAlloc
// fails and at exit. Pinned bytes are host memory: accounted on cpu_allocator()'s accounting
// under the allocation's tag (the bytes asked for, never the cache), device() is the host.
// Invariants: registration touches no GPU; the first allocation does, and throws a
// std::runtime_error naming the missing device when there is none. A block is reused only
// after its last user freed it; copies from it to a device finish before ops::copy_ returns
// (cuda/copy.cu waits for them), so a freed block is never still being read.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>

#include "core/allocator.h"

namespace zt::cuda {

class PinnedHostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, MemoryTag tag) override;
  void deallocate(void* ptr, size_t bytes, MemoryTag tag) override;
  Device device() const override { return Device::cpu(); }
  MemoryAccounting& accounting() override { return cpu_allocator().accounting(); }
  // Returns every cached block to the driver.
  void empty_cache();
  size_t cached_bytes() const;

 private:
  void* take_cached(size_t block_bytes);

  mutable std::mutex mutex_;
  std::multimap<size_t, void*> cached_;  // size class -> free block
  size_t cached_bytes_ = 0;
};

// The process-wide instance, the one registered as zt::pinned_host_allocator().
PinnedHostAllocator& pinned_allocator();

}  // namespace zt::cuda
