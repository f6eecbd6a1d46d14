// The caching pinned host allocator and its registration (see pinned_allocator.h).
#include "cuda/pinned_allocator.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cuda/allocator.h"
#include "cuda/check.h"
#include "cuda/device.h"

namespace zt::cuda {

namespace {

// Gives the cache back at exit. Registered after the first cudaHostAlloc, hence after the CUDA
// runtime's own exit handler, so it runs before the runtime is torn down.
void empty_pinned_cache_at_exit() {
  try {
    pinned_allocator().empty_cache();
  } catch (...) {  // exiting anyway: the process's pages go back to the OS
  }
}

// cudaHostAlloc of `block_bytes`, giving the cache back and trying once more when it fails.
void* allocate_pinned_block(PinnedHostAllocator& allocator, size_t block_bytes) {
  void* ptr = nullptr;
  cudaError_t status = cudaHostAlloc(&ptr, block_bytes, cudaHostAllocPortable);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    allocator.empty_cache();
    status = cudaHostAlloc(&ptr, block_bytes, cudaHostAllocPortable);
  }
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  static const bool exit_handler_registered = [] {
    std::atexit(empty_pinned_cache_at_exit);
    return true;
  }();
  (void)exit_handler_registered;
  return ptr;
}

// The library is linked with --whole-archive for cuda/, so this runs in every binary.
const bool registered = [] {
  register_pinned_host_allocator(&pinned_allocator());
  return true;
}();

}  // namespace

void* PinnedHostAllocator::allocate(size_t bytes, MemoryTag tag) {
  (void)registered;
  if (device_count() == 0) {
    throw std::runtime_error(
        "pinned host memory (" + std::to_string(bytes) + " bytes for " +
        std::string(memory_tag_name(tag)) +
        ") needs a CUDA device to page-lock it; none is visible (no GPU or no driver)");
  }
  accounting().record_allocation(bytes, tag);  // throws past the limit, with the breakdown
  size_t block_bytes = CudaAllocator::block_bytes(bytes);
  void* ptr = take_cached(block_bytes);
  if (ptr == nullptr) ptr = allocate_pinned_block(*this, block_bytes);
  if (ptr == nullptr) {
    accounting().record_free(bytes, tag);
    throw OutOfMemoryError("out of pinned host memory: cudaHostAlloc of " +
                           std::to_string(block_bytes) + " bytes for " +
                           std::string(memory_tag_name(tag)) + " failed");
  }
  return ptr;
}

void PinnedHostAllocator::deallocate(void* ptr, size_t bytes, MemoryTag tag) {
  // No CUDA call here: a tensor freed during static destruction must not fail.
  size_t block_bytes = CudaAllocator::block_bytes(bytes);
  {
    std::lock_guard lock(mutex_);
    cached_.emplace(block_bytes, ptr);
    cached_bytes_ += block_bytes;
  }
  accounting().record_free(bytes, tag);
}

void* PinnedHostAllocator::take_cached(size_t block_bytes) {
  std::lock_guard lock(mutex_);
  auto found = cached_.find(block_bytes);
  if (found == cached_.end()) return nullptr;
  void* ptr = found->second;
  cached_.erase(found);
  cached_bytes_ -= block_bytes;
  return ptr;
}

void PinnedHostAllocator::empty_cache() {
  std::multimap<size_t, void*> released;
  {
    std::lock_guard lock(mutex_);
    released.swap(cached_);
    cached_bytes_ = 0;
  }
  for (const auto& [size, ptr] : released) ZT_CUDA_CHECK(cudaFreeHost(ptr));
}

size_t PinnedHostAllocator::cached_bytes() const {
  std::lock_guard lock(mutex_);
  return cached_bytes_;
}

PinnedHostAllocator& pinned_allocator() {
  static PinnedHostAllocator* allocator = new PinnedHostAllocator();  // never destroyed
  return *allocator;
}

}  // namespace zt::cuda
