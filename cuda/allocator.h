// The caching device allocator: one per CUDA device, with the same tags, live/peak accounting
// and limit as the host allocator (it reuses MemoryAccounting, which counts the bytes asked
// for, never the cache). Freed blocks are kept by size class and handed out again without a
// cudaFree/cudaMalloc (each of which synchronises the device).
// Invariant: a block is reused only by work queued on its device's compute stream, which runs
// after everything queued before the free, so reuse needs no synchronisation. Memory used on
// another stream (the communication stream) must be kept alive by its user until that stream
// has passed an event recorded after the last use.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>

#include "core/allocator.h"

namespace zt::cuda {

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int index) : index_(index), accounting_(Device::cuda(index)) {}
  void* allocate(size_t bytes, MemoryTag tag) override;
  void deallocate(void* ptr, size_t bytes, MemoryTag tag) override;
  Device device() const override { return Device::cuda(index_); }
  MemoryAccounting& accounting() override { return accounting_; }
  // Returns every cached block to the driver (after the device has finished with them).
  void empty_cache();
  size_t cached_bytes() const;

  // The size class of a request: 512-byte multiples below 1 MiB, then steps of 1/8 of the
  // power of two below it (at most 12.5% more than asked), so that near sizes share blocks.
  static size_t block_bytes(size_t bytes);

 private:
  int index_;
  MemoryAccounting accounting_;
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> cached_;  // size class -> free block
  size_t cached_bytes_ = 0;
};

// The allocator of device `index` (throws naming the device when it does not exist).
CudaAllocator& device_allocator(int index);

}  // namespace zt::cuda
