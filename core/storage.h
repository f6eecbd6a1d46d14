// A reference-counted buffer on one device, allocated through an accounted Allocator.
// Invariant: a Storage frees its buffer exactly once, with the tag it was allocated under,
// when the last Tensor (or other holder) of it goes away, or earlier through release().
// release()/materialize() exist for ZeRO stage 3: a partitioned parameter's full buffer is
// dropped between uses while every view of it (the module's parameter, tensors autograd saved)
// keeps pointing at the same StorageImpl, and is refilled in place before the next use.
#pragma once

#include <cstddef>
#include <memory>

#include "core/allocator.h"

namespace zt {

class StorageImpl {
 public:
  StorageImpl(size_t bytes, Allocator& allocator, MemoryTag tag);
  ~StorageImpl();
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // Whether the buffer is allocated (false only between release() and materialize()).
  bool is_materialized() const { return data_ != nullptr || bytes_ == 0; }
  // Frees the buffer now; views keep their shapes but must not be read until materialize().
  void release();
  // Allocates the buffer again (same size and tag) when released; contents are undefined.
  void materialize();
  MemoryTag tag() const { return tag_; }
  Device device() const { return allocator_.device(); }
  Allocator& allocator() const { return allocator_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Allocator& allocator_;
  MemoryTag tag_;
};

using Storage = std::shared_ptr<StorageImpl>;

Storage make_storage(size_t bytes, Device device, MemoryTag tag);

}  // namespace zt
