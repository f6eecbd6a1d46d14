// Memory accounting: live and peak bytes per tag, the limit and its message, alignment; the
// cache of freed blocks keeps a whole step's worth.
#include <doctest/doctest.h>

#include <sys/resource.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/factory.h"

using namespace zt;

TEST_CASE("allocator counts live and peak bytes per tag and frees them") {
  MemoryAccounting& accounting = cpu_allocator().accounting();
  MemoryStats before = accounting.stats();
  accounting.reset_peak();
  {
    Tensor params = empty({1000}, {.tag = MemoryTag::param});  // 4000 bytes
    Tensor moments = empty({250}, {.dtype = DType::f64, .tag = MemoryTag::optim_state});
    MemoryStats during = accounting.stats();
    CHECK(during.live(MemoryTag::param) - before.live(MemoryTag::param) == 4000);
    CHECK(during.live(MemoryTag::optim_state) - before.live(MemoryTag::optim_state) == 2000);
    CHECK(during.total_live_bytes - before.total_live_bytes == 6000);
  }
  MemoryStats after = accounting.stats();
  CHECK(after.live(MemoryTag::param) == before.live(MemoryTag::param));
  CHECK(after.live(MemoryTag::optim_state) == before.live(MemoryTag::optim_state));
  CHECK(after.peak(MemoryTag::param) >= before.live(MemoryTag::param) + 4000);
  CHECK(after.total_peak_bytes >= before.total_live_bytes + 6000);
}

TEST_CASE("total peak is the peak of the sum, not the sum of per-tag peaks") {
  MemoryAccounting& accounting = cpu_allocator().accounting();
  accounting.reset_peak();
  int64_t base = accounting.stats().total_live_bytes;
  { Tensor first = empty({1024}, {.tag = MemoryTag::activation}); }
  { Tensor second = empty({1024}, {.tag = MemoryTag::grad}); }
  MemoryStats stats = accounting.stats();
  CHECK(stats.total_peak_bytes - base == 4096);
  CHECK(stats.peak(MemoryTag::activation) >= 4096);
  CHECK(stats.peak(MemoryTag::grad) >= 4096);
}

TEST_CASE("MemoryTagGuard sets the tag of allocations that name none") {
  CHECK(current_memory_tag() == MemoryTag::other);
  {
    MemoryTagGuard guard(MemoryTag::activation);
    Tensor made_in_forward = zeros({4});
    CHECK(made_in_forward.storage()->tag() == MemoryTag::activation);
    {
      MemoryTagGuard inner(MemoryTag::comm);
      CHECK(current_memory_tag() == MemoryTag::comm);
    }
    CHECK(current_memory_tag() == MemoryTag::activation);
  }
  CHECK(current_memory_tag() == MemoryTag::other);
}

TEST_CASE("an allocation past the limit fails with the per-tag breakdown") {
  MemoryAccounting& accounting = cpu_allocator().accounting();
  int64_t live = accounting.stats().total_live_bytes;
  accounting.set_limit(live + 10000);
  Tensor fits = empty({2000}, {.tag = MemoryTag::param});  // 8000 bytes
  std::string message;
  try {
    Tensor too_much = empty({1000}, {.tag = MemoryTag::grad});
  } catch (const OutOfMemoryError& error) {
    message = error.what();
  }
  accounting.set_limit(0);
  CHECK(message.find("out of memory on cpu") != std::string::npos);
  CHECK(message.find("grad") != std::string::npos);
  CHECK(message.find("param") != std::string::npos);
  CHECK(message.find("optim_state") != std::string::npos);
  // The failed allocation was not counted.
  CHECK(accounting.stats().total_live_bytes == live + 8000);
}

TEST_CASE("allocations are 64-byte aligned, including zero-byte ones") {
  for (int64_t count : {0, 1, 3, 17, 129, 4097}) {
    Tensor tensor = empty({count}, {.dtype = DType::u8});
    CHECK(reinterpret_cast<uintptr_t>(tensor.storage()->data()) % 64 == 0);
  }
}

TEST_CASE("blocks of 8 MiB and more start on a 2 MiB huge-page boundary") {
  // So that the transparent huge pages the allocator asks for can back the whole block.
  for (int64_t bytes : {int64_t(8) << 20, (int64_t(8) << 20) + 1, int64_t(50) << 20}) {
    Tensor tensor = empty({bytes}, {.dtype = DType::u8});
    CHECK(reinterpret_cast<uintptr_t>(tensor.storage()->data()) % (uintptr_t(2) << 20) == 0);
  }
}

#if !defined(__SANITIZE_ADDRESS__)  // AddressSanitizer builds cache nothing
namespace {
long minor_page_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}
}  // namespace

TEST_CASE("freed blocks beyond the fixed cache capacity are reused when that much was live") {
  // 5 x 60 MiB live at once, more than the 256 MiB the cache starts with: after they are all
  // freed, allocating them again takes every one from the cache, with no fresh (faulting) page.
  const size_t block = size_t(60) << 20;
  Allocator& allocator = cpu_allocator();
  auto allocate_and_touch = [&] {
    std::vector<void*> blocks;
    for (int i = 0; i < 5; ++i) {
      blocks.push_back(allocator.allocate(block, MemoryTag::activation));
      std::memset(blocks.back(), i, block);
    }
    return blocks;
  };
  for (void* ptr : allocate_and_touch()) allocator.deallocate(ptr, block, MemoryTag::activation);
  const long faults_before = minor_page_faults();
  std::vector<void*> again = allocate_and_touch();
  const long new_pages = minor_page_faults() - faults_before;
  for (void* ptr : again) allocator.deallocate(ptr, block, MemoryTag::activation);
  // One 60 MiB block from the OS would fault 15360 pages.
  CHECK(new_pages < 2000);
}
#endif

TEST_CASE("the limit holds device bytes: host-resident (offload) tags are counted apart") {
  MemoryAccounting& accounting = cpu_allocator().accounting();
  MemoryStats before = accounting.stats();
  accounting.set_limit(before.device_live_bytes + 10000);
  std::string message;
  {
    // 40000 bytes of offloaded optimizer state pass a 10000-byte device limit ...
    Tensor host_state = empty({10000}, {.tag = MemoryTag::optim_state_offload});
    Tensor swap = empty({1000}, {.tag = MemoryTag::swap_buffer});
    MemoryStats during = accounting.stats();
    CHECK(during.device_live_bytes == before.device_live_bytes);
    CHECK(during.total_live_bytes == before.total_live_bytes + 44000);
    CHECK(during.live(MemoryTag::optim_state_offload) ==
          before.live(MemoryTag::optim_state_offload) + 40000);
    // ... while the same bytes on the device do not.
    try {
      Tensor device_state = empty({10000}, {.tag = MemoryTag::optim_state});
    } catch (const OutOfMemoryError& error) {
      message = error.what();
    }
  }
  accounting.set_limit(0);
  CHECK(message.find("optim_state_offload") != std::string::npos);
  CHECK(message.find("device") != std::string::npos);
  CHECK(is_host_resident(MemoryTag::param_offload));
  CHECK(is_host_resident(MemoryTag::grad_offload));
  CHECK(!is_host_resident(MemoryTag::param));
  CHECK(!is_host_resident(MemoryTag::comm));
}
