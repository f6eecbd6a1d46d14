// Registration of the CUDA backend for DeviceType::cuda, its allocators, and the kernels it
// does not have yet. Registering touches no GPU (the backend object holds no state), so a
// build with CUDA runs on a machine without one; the first tensor on a missing device throws
// from the allocator, naming the device.
#include "cuda/cuda_backend.h"

#include <stdexcept>
#include <string>

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

[[noreturn]] void not_implemented(const char* op, const Tensor& on) {
  throw std::runtime_error(std::string(op) + " is not implemented on CUDA yet (tensor on " +
                           on.device().str() + "); move the tensors to the cpu for it");
}
}  // namespace

Allocator& CudaBackend::allocator(Device device) {
  (void)registered;
  return device_allocator(device.index);
}

int CudaBackend::device_count() const {
  return cuda::device_count();
}

void CudaBackend::conv2d_forward(const Tensor& input, const Tensor&, const Tensor&, const Tensor&,
                                 const Conv2dParams&) {
  not_implemented("conv2d_forward", input);
}

void CudaBackend::conv2d_backward_input(const Tensor& grad_out, const Tensor&, const Tensor&,
                                        const Conv2dParams&) {
  not_implemented("conv2d_backward_input", grad_out);
}

void CudaBackend::conv2d_backward_weight(const Tensor& grad_out, const Tensor&, const Tensor&,
                                         const Conv2dParams&) {
  not_implemented("conv2d_backward_weight", grad_out);
}

}  // namespace zt::cuda
