// The Backend's ordering and timing calls on the CPU: synchronize and waits are no-ops that may
// be called anywhere, events are host times, and elapsed time between two records is measured.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "core/backend.h"
#include "core/factory.h"

using namespace zt;

TEST_CASE("cpu_synchronize_and_events_are_callable_no_ops") {
  Backend& cpu = backend_for(Device::cpu());
  Tensor values = full({4}, 2.0);
  cpu.synchronize(Device::cpu());
  BackendEvent start = cpu.record_event(Device::cpu());
  CHECK(start.device == Device::cpu());
  cpu.wait_event(start, Device::cpu());
  cpu.synchronize_event(start);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  BackendEvent end = cpu.record_event(Device::cpu());
  double seconds = cpu.event_elapsed_seconds(start, end);
  CHECK(seconds >= 0.004);
  CHECK(seconds < 5.0);
  CHECK(cpu.event_elapsed_seconds(end, end) == 0.0);
  CHECK(values.to_vector() == std::vector<double>{2.0, 2.0, 2.0, 2.0});
}
