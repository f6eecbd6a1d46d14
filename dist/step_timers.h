// Wall-clock seconds per phase of a training step, summed between two step logs
// (wall_clock_breakdown). Timing only: nothing here changes what a step computes. On a GPU the
// host leaves a phase before its kernels finish, so with wall_clock_breakdown a phase's end
// first waits for the device (as DeepSpeed's timers do); otherwise the timers cost no wait.
#pragma once

#include <chrono>

#include "core/backend.h"
#include "core/device.h"

namespace zt::dist {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Seconds since `start`, after `device`'s queued work is done when `synchronize` is set.
inline double phase_seconds(std::chrono::steady_clock::time_point start, Device device,
                            bool synchronize) {
  if (synchronize) backend_for(device).synchronize(device);
  return seconds_since(start);
}

struct StepTimers {
  double forward = 0, backward = 0, reduce = 0, step = 0;
};

}  // namespace zt::dist
