// The CUDA backend's ordering and timing calls: synchronize waits for queued kernels, an event
// orders a second device's work or the host after it, and timing events measure device time.
// Skipped without a GPU.
#include <doctest/doctest.h>

#include <stdexcept>

#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"
#include "tests/cuda/cuda_test_util.h"

using namespace zt;
using zt::cuda_test::kGpu;

TEST_SUITE("cuda") {
  TEST_CASE("cuda_synchronize_and_events_order_and_time_queued_work" * ZT_NEEDS_CUDA_DEVICE) {
    Backend& gpu = backend_for(kGpu);
    Tensor x = full({1 << 20}, 1.5, {.device = kGpu});
    BackendEvent start = gpu.record_event(kGpu);
    Tensor y = x;
    for (int i = 0; i < 20; ++i) y = ops::add(y, x);
    BackendEvent end = gpu.record_event(kGpu);
    gpu.wait_event(end, kGpu);
    gpu.synchronize_event(end);
    double seconds = gpu.event_elapsed_seconds(start, end);
    CHECK(seconds > 0.0);
    CHECK(seconds < 10.0);
    gpu.synchronize(kGpu);
    CHECK(ops::to_device(y, Device::cpu()).to_vector()[0] == doctest::Approx(31.5));
    BackendEvent copy = end;  // copies share the event
    CHECK(gpu.event_elapsed_seconds(start, copy) == seconds);
  }

  TEST_CASE("cuda_events_reject_a_cpu_event" * ZT_NEEDS_CUDA_DEVICE) {
    Backend& gpu = backend_for(kGpu);
    BackendEvent host = backend_for(Device::cpu()).record_event(Device::cpu());
    CHECK_THROWS_AS(gpu.synchronize_event(host), std::invalid_argument);
  }
}  // TEST_SUITE("cuda")
