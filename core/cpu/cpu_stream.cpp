// The CPU backend's ordering and timing calls. Its kernels have finished when they return, so
// there is nothing to wait for: synchronize and waits are no-ops, and an event is the host's
// steady-clock time at its record, so elapsed times are plain wall time.
#include <chrono>

#include "core/cpu/cpu_backend.h"

namespace zt::cpu {

void CpuBackend::synchronize(Device) {}

BackendEvent CpuBackend::record_event(Device device) {
  auto now = std::chrono::steady_clock::now().time_since_epoch();
  return BackendEvent{device, std::chrono::duration<double>(now).count(), nullptr};
}

void CpuBackend::wait_event(const BackendEvent&, Device) {}

void CpuBackend::synchronize_event(const BackendEvent&) {}

double CpuBackend::event_elapsed_seconds(const BackendEvent& start, const BackendEvent& end) {
  return end.host_seconds - start.host_seconds;
}

}  // namespace zt::cpu
