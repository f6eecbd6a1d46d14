// Memory allocation with accounting by kind.
// Every allocation carries a MemoryTag; the accounting keeps live and peak bytes per tag and
// in total (the total peak is the peak of the sum, not the sum of the peaks). An optional byte
// limit makes an allocation that would pass it fail with OutOfMemoryError, whose message prints
// the breakdown. This is how tests hold ZeRO's memory formulas and how a laptop plays a GPU of
// a given size. Allocations are 64-byte aligned.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/device.h"

namespace zt {

// The *_offload tags count state that offloading moved to host memory, kept apart from the
// tag of the same kind on the device so that reports show what moved:
//   activation_offload   the inputs a checkpoint saves (cpu_checkpointing)
//   param_offload        parameter slices kept in host memory (offload_param)
//   grad_offload         gradients streamed to host memory for the host optimizer
//   optim_state_offload  fp32 master weights and moments in host memory (offload_optimizer)
//   swap_buffer          aligned host buffers that NVMe reads and writes go through
enum class MemoryTag : uint8_t {
  param,
  grad,
  optim_state,
  activation,
  activation_offload,
  comm,
  other,
  param_offload,
  grad_offload,
  optim_state_offload,
  swap_buffer
};
inline constexpr size_t kMemoryTagCount = 11;
std::string_view memory_tag_name(MemoryTag tag);
// Whether a tag's bytes live in host memory by design (the offload tags). On a machine without
// a GPU the host allocator serves both kinds, and these are the bytes a per-rank device limit
// does not count, so a laptop can play a GPU of a given size next to a larger host.
bool is_host_resident(MemoryTag tag);

inline constexpr size_t kAllocationAlignment = 64;

struct MemoryStats {
  std::array<int64_t, kMemoryTagCount> live_bytes{};
  std::array<int64_t, kMemoryTagCount> peak_bytes{};
  int64_t total_live_bytes = 0;
  int64_t total_peak_bytes = 0;
  // The same totals without the host-resident tags: what the limit holds.
  int64_t device_live_bytes = 0;
  int64_t device_peak_bytes = 0;
  int64_t allocation_count = 0;  // allocations made since the last reset_peak

  int64_t live(MemoryTag tag) const { return live_bytes[size_t(tag)]; }
  int64_t peak(MemoryTag tag) const { return peak_bytes[size_t(tag)]; }
  std::string breakdown() const;  // one line: "param 1.2 MiB (peak 1.2 MiB), grad ..."
};

class OutOfMemoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thread-safe bookkeeping shared by every allocator (CPU now, CUDA later). The limit holds
// device bytes: allocations under a host-resident tag are counted but never refused.
class MemoryAccounting {
 public:
  explicit MemoryAccounting(Device device) : device_(device) {}
  // Throws OutOfMemoryError (with the breakdown) if the limit would be passed.
  void record_allocation(size_t bytes, MemoryTag tag);
  void record_free(size_t bytes, MemoryTag tag);
  MemoryStats stats() const;
  void reset_peak();              // peaks restart from the current live bytes
  void set_limit(int64_t bytes);  // device bytes; 0 means no limit
  int64_t limit() const;

 private:
  Device device_;
  mutable std::mutex mutex_;
  MemoryStats stats_;
  int64_t limit_bytes_ = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes, MemoryTag tag) = 0;
  virtual void deallocate(void* ptr, size_t bytes, MemoryTag tag) = 0;
  virtual Device device() const = 0;
  virtual MemoryAccounting& accounting() = 0;
};

// The process-wide host allocator: aligned, accounted. Zero-byte requests return a valid
// unique pointer.
Allocator& cpu_allocator();

// Page-locked (pinned) host memory, for staging device tensors through the host (MPI without
// CUDA awareness) and for asynchronous copies: an Allocator whose device() is the host and
// whose bytes are accounted on cpu_allocator()'s accounting. A device backend registers it at
// static initialisation; nullptr when none did (a CUDA=0 build), so callers fall back to
// cpu_allocator(). Registering must not touch a GPU; the first allocation may, and throws
// without one.
void register_pinned_host_allocator(Allocator* allocator);
Allocator* pinned_host_allocator();

// The tag given to allocations that do not name one: `other` unless a MemoryTagGuard is live
// on this thread (the training engine sets `activation` around forward, `param` when building
// models, and so on).
MemoryTag current_memory_tag();

class MemoryTagGuard {
 public:
  explicit MemoryTagGuard(MemoryTag tag);
  ~MemoryTagGuard();
  MemoryTagGuard(const MemoryTagGuard&) = delete;
  MemoryTagGuard& operator=(const MemoryTagGuard&) = delete;

 private:
  MemoryTag previous_;
};

}  // namespace zt
