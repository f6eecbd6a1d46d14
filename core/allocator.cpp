// Host allocator and the accounting every allocator shares.
#include "core/allocator.h"

#include <fmt/format.h>

#include <cstdlib>
#include <new>

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
    case MemoryTag::comm:
      return "comm";
    case MemoryTag::other:
      return "other";
  }
  return "unknown";
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
  text += fmt::format("total {} (peak {})", format_bytes(total_live_bytes),
                      format_bytes(total_peak_bytes));
  return text;
}

void MemoryAccounting::record_allocation(size_t bytes, MemoryTag tag) {
  std::lock_guard lock(mutex_);
  int64_t size = int64_t(bytes);
  if (limit_bytes_ > 0 && stats_.total_live_bytes + size > limit_bytes_) {
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
}

void MemoryAccounting::record_free(size_t bytes, MemoryTag tag) {
  std::lock_guard lock(mutex_);
  stats_.live_bytes[size_t(tag)] -= int64_t(bytes);
  stats_.total_live_bytes -= int64_t(bytes);
}

MemoryStats MemoryAccounting::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void MemoryAccounting::reset_peak() {
  std::lock_guard lock(mutex_);
  stats_.peak_bytes = stats_.live_bytes;
  stats_.total_peak_bytes = stats_.total_live_bytes;
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

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, MemoryTag tag) override {
    accounting_.record_allocation(bytes, tag);
    // aligned_alloc needs a size that is a multiple of the alignment, and non-zero.
    size_t rounded =
        (bytes + kAllocationAlignment - 1) / kAllocationAlignment * kAllocationAlignment;
    if (rounded == 0) rounded = kAllocationAlignment;
    void* ptr = std::aligned_alloc(kAllocationAlignment, rounded);
    if (ptr == nullptr) {
      accounting_.record_free(bytes, tag);
      throw OutOfMemoryError(fmt::format("out of host memory allocating {} for {}",
                                         format_bytes(int64_t(bytes)), memory_tag_name(tag)));
    }
    return ptr;
  }
  void deallocate(void* ptr, size_t bytes, MemoryTag tag) override {
    std::free(ptr);
    accounting_.record_free(bytes, tag);
  }
  Device device() const override { return Device::cpu(); }
  MemoryAccounting& accounting() override { return accounting_; }

 private:
  MemoryAccounting accounting_{Device::cpu()};
};

thread_local MemoryTag current_tag = MemoryTag::other;

}  // namespace

Allocator& cpu_allocator() {
  static CpuAllocator* allocator = new CpuAllocator();  // never destroyed: outlives statics
  return *allocator;
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
