// The registry of backends by device type. The CPU backend is always present.
#include "core/backend.h"

#include <array>
#include <stdexcept>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/openblas_core_type.h"

namespace zt {

namespace {
std::array<Backend*, 2>& registry() {
  static std::array<Backend*, 2> backends{&cpu::cpu_backend(), nullptr};
  return backends;
}
}  // namespace

Backend& backend_for(Device device) {
  Backend* backend = registry()[size_t(device.type)];
  if (backend == nullptr) {
    throw std::runtime_error(
        "no backend for device " + device.str() +
        ": this program has no CUDA backend (built with CUDA=0 or without nvcc, or not linked "
        "with libzerotrain_cuda.a: pkg-config zerotrain-cuda)");
  }
  return *backend;
}

void register_backend(DeviceType type, Backend* backend) {
  registry()[size_t(type)] = backend;
}

Backend& backend_for_copy(Device from, Device to) {
  return backend_for(from.is_cpu() ? to : from);
}

int device_count(DeviceType type) {
  Backend* backend = registry()[size_t(type)];
  return backend == nullptr ? 0 : backend->device_count();
}

}  // namespace zt

namespace zt::cpu {
CpuBackend& cpu_backend() {
  // Never destroyed: used by static tensors. OpenBLAS's kernels are settled before any kernel
  // of the backend can call it (core/cpu/openblas_core_type.h).
  static CpuBackend* backend = (ensure_openblas_kernels(), new CpuBackend());
  return *backend;
}
}  // namespace zt::cpu
