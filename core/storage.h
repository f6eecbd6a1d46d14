// A reference-counted buffer on one device, allocated through an accounted Allocator.
// Invariant: a Storage frees its buffer exactly once, with the tag it was allocated under,
// when the last Tensor (or other holder) of it goes away, or earlier through release().
// release()/materialize() exist for ZeRO stage 3: a partitioned parameter's full buffer is
// dropped between uses while every view of it (the module's parameter, tensors autograd saved)
// keeps pointing at the same StorageImpl, and is refilled in place before the next use.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/allocator.h"

namespace zt {

class StorageImpl {
 public:
  StorageImpl(size_t bytes, Allocator& allocator, MemoryTag tag);
  // A storage born released: it takes no memory until materialize(). A parameter built
  // partitioned (core/partitioned_values.h) has one, so its full buffer never exists.
  struct Unallocated {};
  StorageImpl(size_t bytes, Allocator& allocator, MemoryTag tag, Unallocated);
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
  // Who releases a buffer can say what it holds, so that reading it while released names the
  // tensor (a stage-3 parameter's name, shape and module) rather than a view's bare shape.
  // `describe` gets the byte offset that was read and returns one sentence, or "".
  using ReleasedDescriber = std::function<std::string(size_t byte_offset)>;
  void set_released_describer(ReleasedDescriber describe) {
    describe_released_ = std::move(describe);
  }
  std::string describe_released(size_t byte_offset) const {
    return describe_released_ ? describe_released_(byte_offset) : std::string();
  }
  MemoryTag tag() const { return tag_; }
  Device device() const { return allocator_.device(); }
  Allocator& allocator() const { return allocator_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Allocator& allocator_;
  MemoryTag tag_;
  ReleasedDescriber describe_released_;
};

using Storage = std::shared_ptr<StorageImpl>;

Storage make_storage(size_t bytes, Device device, MemoryTag tag);
Storage make_unallocated_storage(size_t bytes, Device device, MemoryTag tag);

}  // namespace zt
