// The CUDA backend's ordering and timing calls. synchronize waits for everything queued on the
// device (its compute and communication streams alike); an event is a timing cuda::Event
// recorded on the device's compute stream, where every kernel of the backend is queued, and
// shared by the BackendEvent's copies.
#include <memory>
#include <stdexcept>

#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/device.h"

namespace zt::cuda {

namespace {

const Event& native_event(const BackendEvent& event) {
  if (!event.device.is_cuda() || event.native == nullptr) {
    throw std::invalid_argument("CUDA backend: event of " + event.device.str() +
                                " was not recorded by the CUDA backend");
  }
  return *static_cast<const Event*>(event.native.get());
}

}  // namespace

void CudaBackend::synchronize(Device device) {
  require_device(device.index);
  DeviceGuard guard(device.index);
  ZT_CUDA_CHECK(cudaDeviceSynchronize());
}

BackendEvent CudaBackend::record_event(Device device) {
  require_device(device.index);
  DeviceGuard guard(device.index);
  auto event = std::make_shared<Event>(/*timing=*/true);
  event->record(compute_stream(device.index));
  return BackendEvent{device, 0.0, std::move(event)};
}

void CudaBackend::wait_event(const BackendEvent& event, Device waiter) {
  const Event& native = native_event(event);
  require_device(waiter.index);
  DeviceGuard guard(waiter.index);
  native.wait(compute_stream(waiter.index));
}

void CudaBackend::synchronize_event(const BackendEvent& event) {
  native_event(event).synchronize();
}

double CudaBackend::event_elapsed_seconds(const BackendEvent& start, const BackendEvent& end) {
  const Event& later = native_event(end);
  later.synchronize();
  return double(native_event(start).elapsed_ms(later)) / 1000.0;
}

}  // namespace zt::cuda
