// Wall-clock seconds per phase of a training step, summed between two step logs
// (wall_clock_breakdown). Timing only: nothing here changes what a step computes.
#pragma once

#include <chrono>

namespace zt::dist {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct StepTimers {
  double forward = 0, backward = 0, reduce = 0, step = 0;
};

}  // namespace zt::dist
