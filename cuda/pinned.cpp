// Pinned host buffers (see pinned.h).
#include "cuda/pinned.h"

#include <utility>

#include "cuda/check.h"
#include "cuda/device.h"

namespace zt::cuda {

PinnedBuffer::PinnedBuffer(size_t bytes, MemoryTag tag) : bytes_(bytes), tag_(tag) {
  require_device(0);
  cpu_allocator().accounting().record_allocation(bytes, tag);
  cudaError_t status = cudaHostAlloc(&data_, bytes == 0 ? 1 : bytes, cudaHostAllocPortable);
  if (status != cudaSuccess) {
    cpu_allocator().accounting().record_free(bytes, tag);
    data_ = nullptr;
    ZT_CUDA_CHECK(status);
  }
}

PinnedBuffer::~PinnedBuffer() {
  reset();
}

PinnedBuffer::PinnedBuffer(PinnedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      tag_(other.tag_) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    tag_ = other.tag_;
  }
  return *this;
}

void PinnedBuffer::reset() {
  if (data_ == nullptr) return;
  (void)cudaFreeHost(data_);  // waits for copies still reading it
  cpu_allocator().accounting().record_free(bytes_, tag_);
  data_ = nullptr;
}

}  // namespace zt::cuda
