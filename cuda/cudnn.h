// cuDNN for the CUDA backend: one handle per device, bound to that device's compute stream so
// that cuDNN kernels are ordered with every other kernel of the backend, and failures turned
// into exceptions naming the call. Handles are created on first use and never destroyed (as
// the device contexts: destruction during static teardown races the runtime's own).
#pragma once

#include <cudnn.h>

namespace zt::cuda {

[[noreturn]] void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file,
                                    int line);

// The cuDNN handle of device `index`, on its compute stream (throws if the device is missing).
cudnnHandle_t cudnn_handle(int index);

}  // namespace zt::cuda

#define ZT_CUDNN_CHECK(call)                                                      \
  do {                                                                            \
    cudnnStatus_t zt_cudnn_status_ = (call);                                      \
    if (zt_cudnn_status_ != CUDNN_STATUS_SUCCESS)                                 \
      ::zt::cuda::throw_cudnn_error(zt_cudnn_status_, #call, __FILE__, __LINE__); \
  } while (0)
