// Host allocator and the accounting every allocator shares.
#include "core/allocator.h"

#include <fmt/format.h>

#include <sys/mman.h>
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace zt {

std::string_view memory_tag_name(MemoryTag tag) {
  switch (tag) {
    case MemoryTag::param:
      return "param";
    case MemoryTag::grad:
      return "grad";
    case MemoryTag::optim_state:
      return "optim_state";
    case MemoryTag::activation:
      return "activation";
    case MemoryTag::activation_offload:
      return "activation_offload";
    case MemoryTag::comm:
      return "comm";
    case MemoryTag::other:
      return "other";
    case MemoryTag::param_offload:
      return "param_offload";
    case MemoryTag::grad_offload:
      return "grad_offload";
    case MemoryTag::optim_state_offload:
      return "optim_state_offload";
    case MemoryTag::swap_buffer:
      return "swap_buffer";
  }
  return "unknown";
}

bool is_host_resident(MemoryTag tag) {
  switch (tag) {
    case MemoryTag::activation_offload:
    case MemoryTag::param_offload:
    case MemoryTag::grad_offload:
    case MemoryTag::optim_state_offload:
    case MemoryTag::swap_buffer:
      return true;
    default:
      return false;
  }
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : fmt::format("cuda:{}", index);
}

static std::string format_bytes(int64_t bytes) {
  double value = double(bytes);
  if (bytes >= (int64_t(1) << 30)) return fmt::format("{:.2f} GiB", value / double(1 << 30));
  if (bytes >= (int64_t(1) << 20)) return fmt::format("{:.2f} MiB", value / double(1 << 20));
  if (bytes >= (int64_t(1) << 10)) return fmt::format("{:.2f} KiB", value / double(1 << 10));
  return fmt::format("{} B", bytes);
}

std::string MemoryStats::breakdown() const {
  std::string text;
  for (size_t i = 0; i < kMemoryTagCount; ++i) {
    text += fmt::format("{} {} (peak {}), ", memory_tag_name(MemoryTag(i)),
                        format_bytes(live_bytes[i]), format_bytes(peak_bytes[i]));
  }
  text += fmt::format("device {} (peak {}), total {} (peak {})", format_bytes(device_live_bytes),
                      format_bytes(device_peak_bytes), format_bytes(total_live_bytes),
                      format_bytes(total_peak_bytes));
  return text;
}

void MemoryAccounting::record_allocation(size_t bytes, MemoryTag tag) {
  std::lock_guard lock(mutex_);
  int64_t size = int64_t(bytes);
  bool on_device = !is_host_resident(tag);
  if (on_device && limit_bytes_ > 0 && stats_.device_live_bytes + size > limit_bytes_) {
    throw OutOfMemoryError(fmt::format(
        "out of memory on {}: allocating {} for {} would pass the limit of {}; live: {}",
        device_.str(), format_bytes(size), memory_tag_name(tag), format_bytes(limit_bytes_),
        stats_.breakdown()));
  }
  size_t index = size_t(tag);
  stats_.live_bytes[index] += size;
  stats_.total_live_bytes += size;
  stats_.allocation_count += 1;
  if (stats_.live_bytes[index] > stats_.peak_bytes[index])
    stats_.peak_bytes[index] = stats_.live_bytes[index];
  if (stats_.total_live_bytes > stats_.total_peak_bytes)
    stats_.total_peak_bytes = stats_.total_live_bytes;
  if (on_device) {
    stats_.device_live_bytes += size;
    stats_.device_peak_bytes = std::max(stats_.device_peak_bytes, stats_.device_live_bytes);
  }
}

void MemoryAccounting::record_free(size_t bytes, MemoryTag tag) {
  std::lock_guard lock(mutex_);
  stats_.live_bytes[size_t(tag)] -= int64_t(bytes);
  stats_.total_live_bytes -= int64_t(bytes);
  if (!is_host_resident(tag)) stats_.device_live_bytes -= int64_t(bytes);
}

MemoryStats MemoryAccounting::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void MemoryAccounting::reset_peak() {
  std::lock_guard lock(mutex_);
  stats_.peak_bytes = stats_.live_bytes;
  stats_.total_peak_bytes = stats_.total_live_bytes;
  stats_.device_peak_bytes = stats_.device_live_bytes;
  stats_.allocation_count = 0;
}

void MemoryAccounting::set_limit(int64_t bytes) {
  std::lock_guard lock(mutex_);
  limit_bytes_ = bytes;
}

int64_t MemoryAccounting::limit() const {
  std::lock_guard lock(mutex_);
  return limit_bytes_;
}

namespace {

// Freed blocks of kMinCachedBytes or more are kept for the next allocation of the same rounded
// size: a training step allocates the same large activations and gradients every step, and
// memory fresh from the OS costs a page fault and a zeroed page per 4 KiB. The cache sits below
// the accounting, which counts only blocks handed out, fresh or reused. It holds at most
// kCacheCapacityBytes, or the most that was ever handed out at once if that is more (a model
// whose step frees more than the fixed capacity would otherwise take fresh pages every step,
// their zeroing a seventh of a small GPT's step), and gives the oldest blocks back first.
// AddressSanitizer builds do not cache, so that a use after free is still caught.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCacheFreedBlocks = false;
#else
constexpr bool kCacheFreedBlocks = true;
#endif
constexpr size_t kMinCachedBytes = size_t(64) << 10;
constexpr size_t kMaxCachedBlockBytes = size_t(64) << 20;
constexpr size_t kCacheCapacityBytes = size_t(256) << 20;
constexpr size_t kPageBytes = 4096;
// Blocks of kHugePageMinBytes or more are whole 2 MiB huge pages, aligned to them, and ask the
// kernel for transparent huge pages (madvise; the kernel's default mode is often "madvise"):
// the host optimizer's master weights and moments, offloaded state and large activations are
// streamed end to end, and with 4 KiB pages their TLB misses and page faults cost 5-15% of a
// host Adam step (docs/host_adam.md). From 8 MiB, the rounding wastes at most a fifth.
constexpr size_t kHugePageBytes = size_t(2) << 20;
constexpr size_t kHugePageMinBytes = size_t(8) << 20;

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, MemoryTag tag) override {
    accounting_.record_allocation(bytes, tag);
    size_t rounded = block_bytes(bytes);
    void* ptr = take_cached(rounded);
    if (ptr == nullptr) ptr = fresh_block(rounded);
    if (ptr == nullptr) {  // the cache may hold what the OS now lacks
      release_cache();
      ptr = fresh_block(rounded);
    }
    if (ptr == nullptr) {
      accounting_.record_free(bytes, tag);
      throw OutOfMemoryError(fmt::format("out of host memory allocating {} for {}",
                                         format_bytes(int64_t(bytes)), memory_tag_name(tag)));
    }
    if (cacheable(rounded)) {
      std::lock_guard lock(cache_mutex_);
      cacheable_live_bytes_ += rounded;
      cache_capacity_bytes_ = std::max(cache_capacity_bytes_, cacheable_live_bytes_);
    }
    return ptr;
  }
  void deallocate(void* ptr, size_t bytes, MemoryTag tag) override {
    cache_or_free(ptr, block_bytes(bytes));
    accounting_.record_free(bytes, tag);
  }
  Device device() const override { return Device::cpu(); }
  MemoryAccounting& accounting() override { return accounting_; }

 private:
  struct CachedBlock {
    size_t bytes;
    void* ptr;
  };

  static bool cacheable(size_t rounded) {
    return kCacheFreedBlocks && rounded >= kMinCachedBytes && rounded <= kMaxCachedBlockBytes;
  }

  // What aligned_alloc is asked for: a non-zero multiple of the alignment (its requirement),
  // whole pages for cacheable sizes, so that near sizes share blocks, and whole huge pages
  // from kHugePageMinBytes.
  static size_t block_bytes(size_t bytes) {
    size_t rounded =
        (bytes + kAllocationAlignment - 1) / kAllocationAlignment * kAllocationAlignment;
    if (rounded == 0) return kAllocationAlignment;
    if (rounded >= kHugePageMinBytes)
      return (rounded + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    if (rounded >= kMinCachedBytes) rounded = (rounded + kPageBytes - 1) / kPageBytes * kPageBytes;
    return rounded;
  }

  // Memory from the OS for a block of `rounded` bytes (block_bytes), null when there is none.
  static void* fresh_block(size_t rounded) {
    if (rounded < kHugePageMinBytes) return std::aligned_alloc(kAllocationAlignment, rounded);
    void* ptr = std::aligned_alloc(kHugePageBytes, rounded);
#if defined(MADV_HUGEPAGE)
    // Advice only: a kernel without transparent huge pages refuses it and 4 KiB pages serve.
    if (ptr != nullptr) (void)madvise(ptr, rounded, MADV_HUGEPAGE);
#endif
    return ptr;
  }

  void* take_cached(size_t rounded) {
    if (!cacheable(rounded)) return nullptr;
    std::lock_guard lock(cache_mutex_);
    // The newest block of this size first: the likeliest to be in cache.
    for (size_t i = cached_.size(); i-- > 0;) {
      if (cached_[i].bytes != rounded) continue;
      void* ptr = cached_[i].ptr;
      cached_.erase(cached_.begin() + std::ptrdiff_t(i));
      cached_bytes_ -= rounded;
      return ptr;
    }
    return nullptr;
  }

  void cache_or_free(void* ptr, size_t rounded) {
    if (!cacheable(rounded)) {
      std::free(ptr);
      return;
    }
    std::vector<void*> evicted;
    {
      std::lock_guard lock(cache_mutex_);
      cacheable_live_bytes_ -= rounded;
      cached_.push_back({rounded, ptr});
      cached_bytes_ += rounded;
      size_t oldest = 0;
      while (cached_bytes_ > cache_capacity_bytes_) {
        evicted.push_back(cached_[oldest].ptr);
        cached_bytes_ -= cached_[oldest].bytes;
        ++oldest;
      }
      cached_.erase(cached_.begin(), cached_.begin() + std::ptrdiff_t(oldest));
    }
    for (void* block : evicted) std::free(block);
  }

  void release_cache() {
    std::vector<CachedBlock> released;
    {
      std::lock_guard lock(cache_mutex_);
      released.swap(cached_);
      cached_bytes_ = 0;
    }
    for (const CachedBlock& block : released) std::free(block.ptr);
  }

  MemoryAccounting accounting_{Device::cpu()};
  std::mutex cache_mutex_;
  std::vector<CachedBlock> cached_;  // oldest first
  size_t cached_bytes_ = 0;
  size_t cacheable_live_bytes_ = 0;  // of cacheable sizes, handed out and not yet freed
  size_t cache_capacity_bytes_ = kCacheCapacityBytes;
};

thread_local MemoryTag current_tag = MemoryTag::other;

}  // namespace

Allocator& cpu_allocator() {
  static CpuAllocator* allocator = new CpuAllocator();  // never destroyed: outlives statics
  return *allocator;
}

namespace {
// A function-local static: registration runs during other files' static initialisation.
Allocator*& registered_pinned_host_allocator() {
  static Allocator* allocator = nullptr;
  return allocator;
}
}  // namespace

void register_pinned_host_allocator(Allocator* allocator) {
  registered_pinned_host_allocator() = allocator;
}

Allocator* pinned_host_allocator() {
  return registered_pinned_host_allocator();
}

MemoryTag current_memory_tag() {
  return current_tag;
}

MemoryTagGuard::MemoryTagGuard(MemoryTag tag) : previous_(current_tag) {
  current_tag = tag;
}
MemoryTagGuard::~MemoryTagGuard() {
  current_tag = previous_;
}

}  // namespace zt
