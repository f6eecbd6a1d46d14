// A reference-counted buffer on one device, allocated through an accounted Allocator.
// Invariant: a Storage frees its buffer exactly once, with the tag it was allocated under,
// when the last Tensor (or other holder) of it goes away.
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
