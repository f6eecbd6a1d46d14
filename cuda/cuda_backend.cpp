// Registration of the CUDA backend for DeviceType::cuda and its allocators. Registering
// touches no GPU (the backend object holds no state), so a build with CUDA runs on a machine
// without one; the first tensor on a missing device throws from the allocator, naming it.
#include "cuda/cuda_backend.h"

#include "cuda/allocator.h"
#include "cuda/device.h"

namespace zt::cuda {

CudaBackend& cuda_backend() {
  static CudaBackend* backend = new CudaBackend();  // never destroyed: used by static tensors
  return *backend;
}

namespace {
// The library is linked with --whole-archive for cuda/, so this runs in every binary.
const bool registered = [] {
  register_backend(DeviceType::cuda, &cuda_backend());
  return true;
}();
}  // namespace

Allocator& CudaBackend::allocator(Device device) {
  (void)registered;
  return device_allocator(device.index);
}

int CudaBackend::device_count() const {
  return cuda::device_count();
}

}  // namespace zt::cuda
