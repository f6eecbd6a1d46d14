// Storage allocation through the accounted allocator of its device.
#include "core/storage.h"

#include "core/backend.h"

namespace zt {

StorageImpl::StorageImpl(size_t bytes, Allocator& allocator, MemoryTag tag)
    : bytes_(bytes), allocator_(allocator), tag_(tag) {
  data_ = allocator_.allocate(bytes, tag);
}

StorageImpl::StorageImpl(size_t bytes, Allocator& allocator, MemoryTag tag, Unallocated)
    : bytes_(bytes), allocator_(allocator), tag_(tag) {}

StorageImpl::~StorageImpl() {
  release();
}

void StorageImpl::release() {
  if (data_ == nullptr) return;
  allocator_.deallocate(data_, bytes_, tag_);
  data_ = nullptr;
}

void StorageImpl::materialize() {
  if (data_ == nullptr) data_ = allocator_.allocate(bytes_, tag_);
}

Storage make_storage(size_t bytes, Device device, MemoryTag tag) {
  return std::make_shared<StorageImpl>(bytes, backend_for(device).allocator(device), tag);
}

Storage make_unallocated_storage(size_t bytes, Device device, MemoryTag tag) {
  return std::make_shared<StorageImpl>(bytes, backend_for(device).allocator(device), tag,
                                       StorageImpl::Unallocated{});
}

}  // namespace zt
