// Fault points: named places of a training job where a test may make the process fail, to
// prove that what a failure leaves behind is safe (a checkpoint being written, the other ranks
// of the job). The library and the apps only announce the points; nothing happens there unless
// a handler was installed, which only the fault-injecting test build of the apps does
// (tests/faults/env_fault_handler.cpp). Reaching a point without a handler costs one load.
#pragma once

#include <cstdint>
#include <string_view>

namespace zt::dist {

struct FaultPoint {
  std::string_view name;  // e.g. "checkpoint_save_begin"
  int rank = 0;           // the data-parallel rank that reached it
  int64_t step = -1;      // the optimizer step it belongs to, where there is one
};

using FaultHandler = void (*)(const FaultPoint& point);

// Installs the handler every later point is passed to (nullptr removes it). Not thread-safe:
// install it before training starts.
void install_fault_handler(FaultHandler handler);
void reach_fault_point(std::string_view name, int rank, int64_t step = -1);

}  // namespace zt::dist
