// The pinned host allocator registry (core/allocator.h) and the CUDA build's caching pinned
// allocator: registered exactly when a CUDA backend is, host-side and accounted on the host
// under the allocation's tag, cached by size; without a device its first allocation throws a
// clear error and leaves the accounting as it was.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "core/allocator.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "core/storage.h"
#include "tests/requirements.h"

namespace zt {
namespace {

bool has_cuda_backend() {
  try {
    (void)backend_for(Device::cuda(0));
    return true;
  } catch (const std::runtime_error&) {
    return false;
  }
}

TEST_CASE("pinned_host_allocator_is_registered_exactly_in_a_cuda_build") {
  CHECK((pinned_host_allocator() != nullptr) == has_cuda_backend());
}

TEST_CASE("pinned_host_allocator_is_host_memory_accounted_on_the_host_allocator" *
          ZT_NEEDS_CUDA_BUILD) {
  Allocator* pinned = pinned_host_allocator();
  REQUIRE(pinned != nullptr);
  CHECK(pinned->device() == Device::cpu());
  CHECK(&pinned->accounting() == &cpu_allocator().accounting());
  int64_t comm_before = cpu_allocator().accounting().stats().live(MemoryTag::comm);
  if (cuda_device_count() == 0) {
    std::string error;
    try {
      (void)pinned->allocate(1000, MemoryTag::comm);
    } catch (const std::runtime_error& caught) {
      error = caught.what();
    }
    CHECK(error.find("needs a CUDA device") != std::string::npos);
    CHECK(cpu_allocator().accounting().stats().live(MemoryTag::comm) == comm_before);
    return;
  }
  void* block = pinned->allocate(1000, MemoryTag::comm);
  CHECK(cpu_allocator().accounting().stats().live(MemoryTag::comm) == comm_before + 1000);
  std::memset(block, 7, 1000);  // host-writable
  pinned->deallocate(block, 1000, MemoryTag::comm);
  CHECK(cpu_allocator().accounting().stats().live(MemoryTag::comm) == comm_before);
  void* again = pinned->allocate(1000, MemoryTag::comm);
  CHECK(again == block);  // the cached block of the same size class
  pinned->deallocate(again, 1000, MemoryTag::comm);
}

// A contiguous tensor shaped like `like` over a fresh pinned buffer.
Tensor pinned_empty_like(const Tensor& like) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage =
      std::make_shared<StorageImpl>(like.nbytes(), *pinned_host_allocator(), MemoryTag::comm);
  impl->sizes = like.sizes();
  impl->strides = like.strides();
  impl->dtype = like.dtype();
  return Tensor(std::move(impl));
}

TEST_CASE("a_pinned_tensor_may_be_freed_and_its_block_reused_right_after_a_copy_to_the_device" *
          ZT_NEEDS_CUDA_DEVICE) {
  REQUIRE(pinned_host_allocator() != nullptr);
  Tensor values = arange(0, 300000, 1, {.dtype = DType::f32});
  Tensor on_device;
  {
    Tensor staged = pinned_empty_like(values);
    CHECK(staged.device() == Device::cpu());
    ops::copy_(staged, values);
    on_device = staged.to(Device::cuda(0));
  }                                              // freed: its block is back in the cache at once
  Tensor scribbled = pinned_empty_like(values);  // the same cached block
  ops::copy_(scribbled, zeros_like(values));
  CHECK(on_device.to(Device::cpu()).to_vector() == values.to_vector());
}

}  // namespace
}  // namespace zt
