// --device-memory-mib: a rank's device allocations refused past a size (the allocator's limit,
// core/allocator.h), so a CPU run plays a GPU of that size and a run that needs more stops with
// the out-of-memory error naming the limit; and the peak the run reached, over the ranks.
#pragma once

#include <cstdint>

#include "comm/communicator.h"
#include "core/allocator.h"
#include "core/backend.h"
#include "core/factory.h"

namespace zt::apps {

// `mib` 0: no limit. The peak restarts here, so the reported peak is the run's.
inline void limit_device_memory(Device device, double mib) {
  MemoryAccounting& accounting = backend_for(device).allocator(device).accounting();
  accounting.set_limit(int64_t(mib * double(1 << 20)));
  accounting.reset_peak();
}

// The largest rank's peak of device bytes, in MiB (collective over `world`).
inline double peak_device_mib(Device device, comm::Communicator& world) {
  const MemoryStats stats = backend_for(device).allocator(device).accounting().stats();
  Tensor peak =
      from_values({double(stats.device_peak_bytes) / double(1 << 20)}, {1}, {.dtype = DType::f64});
  world.all_reduce(peak, comm::ReduceOperation::max);
  return peak.item();
}

}  // namespace zt::apps
