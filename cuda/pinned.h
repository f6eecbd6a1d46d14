// Page-locked (pinned) host buffers, for asynchronous host<->device copies and for staging
// device tensors through host memory (MPI without CUDA awareness). Pinned bytes are host
// memory, so they are accounted on the host allocator under the buffer's tag.
#pragma once

#include <cstddef>

#include "core/allocator.h"

namespace zt::cuda {

class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(size_t bytes, MemoryTag tag);  // throws without a CUDA device
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& other) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void reset();
  void* data_ = nullptr;
  size_t bytes_ = 0;
  MemoryTag tag_ = MemoryTag::other;
};

}  // namespace zt::cuda
