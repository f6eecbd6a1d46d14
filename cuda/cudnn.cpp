// The per-device cuDNN handles and the cuDNN error path. A handle is created with its device
// current and bound to the compute stream once; cudnnSetStream is never called again, so a
// handle is never seen on another stream.
#include "cuda/cudnn.h"

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/device.h"

namespace zt::cuda {

void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file, int line) {
  throw std::runtime_error(std::string("cuDNN error ") + cudnnGetErrorString(status) + " in " +
                           call + " at " + file + ":" + std::to_string(line));
}

cudnnHandle_t cudnn_handle(int index) {
  DeviceContext& ctx = context(index);  // throws naming a missing device
  static std::mutex mutex;
  static std::vector<cudnnHandle_t> handles(size_t(device_count()), nullptr);
  std::lock_guard lock(mutex);
  cudnnHandle_t& slot = handles[size_t(index)];
  if (slot == nullptr) {
    DeviceGuard guard(index);
    cudnnHandle_t handle = nullptr;
    ZT_CUDNN_CHECK(cudnnCreate(&handle));
    ZT_CUDNN_CHECK(cudnnSetStream(handle, ctx.compute_stream));
    slot = handle;  // never destroyed, see the header
  }
  return slot;
}

}  // namespace zt::cuda
