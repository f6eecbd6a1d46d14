// Device discovery and lazily created per-device contexts.
// Contexts are created once under a mutex and never destroyed: streams and handles destroyed
// during static destruction race the CUDA runtime's own teardown.
#include "cuda/device.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/check.h"

namespace zt::cuda {

int device_count() {
  static const int count = [] {
    int devices = 0;
    cudaError_t status = cudaGetDeviceCount(&devices);
    if (status != cudaSuccess) {
      (void)cudaGetLastError();  // no driver or no device: clear the sticky-free error
      return 0;
    }
    return devices;
  }();
  return count;
}

void require_device(int index) {
  int count = device_count();
  if (index < 0 || index >= count) {
    throw std::runtime_error("cuda:" + std::to_string(index) + ": no such CUDA device (" +
                             std::to_string(count) + " visible" +
                             (count == 0 ? "; no GPU or no driver on this machine)" : ")"));
  }
}

namespace {
std::atomic<bool> tf32_allowed{false};

// The devices this process has made current. Since CUDA 12, cudaSetDevice creates the primary
// context of its device at once; restoring a device nobody here used (cudaGetDevice answers 0
// before any device is set) would give every rank of a node a context on GPU 0, hundreds of MB
// each, and fail outright in exclusive-process mode. Devices past 63 count as used.
std::atomic<uint64_t> devices_used{0};

void mark_used(int index) {
  if (index < 64) devices_used.fetch_or(uint64_t(1) << index);
}

bool was_used(int index) {
  return index >= 64 || (devices_used.load() >> index & 1u) != 0;
}

std::mutex contexts_mutex;
// Created on first use, one per device, never destroyed (see the file comment).
std::vector<DeviceContext*>& contexts() {
  static std::vector<DeviceContext*> all(size_t(device_count()), nullptr);
  return all;
}
}  // namespace

void set_allow_tf32(bool allow) {
  tf32_allowed = allow;
  // Handles already created follow the new setting; contexts not yet created read it when they
  // are (creating them here would put a context on every GPU of the node).
  std::lock_guard lock(contexts_mutex);
  for (DeviceContext* ctx : contexts()) {
    if (ctx == nullptr) continue;
    DeviceGuard guard(ctx->index);
    ZT_CUBLAS_CHECK(
        cublasSetMathMode(ctx->blas, allow ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  }
}

bool allow_tf32() {
  return tf32_allowed;
}

DeviceContext& context(int index) {
  require_device(index);
  std::lock_guard lock(contexts_mutex);
  DeviceContext*& slot = contexts()[size_t(index)];
  if (slot == nullptr) {
    DeviceGuard guard(index);
    auto ctx = std::make_unique<DeviceContext>();
    ctx->index = index;
    ZT_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->compute_stream, cudaStreamNonBlocking));
    ZT_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->comm_stream, cudaStreamNonBlocking));
    ZT_CUDA_CHECK(
        cudaDeviceGetAttribute(&ctx->multiprocessor_count, cudaDevAttrMultiProcessorCount, index));
    ZT_CUBLAS_CHECK(cublasCreate(&ctx->blas));
    ZT_CUBLAS_CHECK(cublasSetStream(ctx->blas, ctx->compute_stream));
    ZT_CUBLAS_CHECK(cublasSetMathMode(
        ctx->blas, tf32_allowed ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    slot = ctx.release();  // never destroyed, see the file comment
  }
  return *slot;
}

cudaStream_t compute_stream(int index) {
  return context(index).compute_stream;
}

void synchronize(int index) {
  ZT_CUDA_CHECK(cudaStreamSynchronize(compute_stream(index)));
}

void stream_wait(cudaStream_t waiter, cudaStream_t producer) {
  Event ready;
  ready.record(producer);
  ready.wait(waiter);
}

DeviceGuard::DeviceGuard(int index) {
  ZT_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != index) {
    ZT_CUDA_CHECK(cudaSetDevice(index));
    // Only a device this process used before is restored: the default answer of cudaGetDevice
    // (0) must not become a context on GPU 0 (see devices_used). Otherwise `index` stays
    // current, which is what a rank that uses one GPU wants.
    changed_ = was_used(previous_);
  }
  mark_used(index);
}

DeviceGuard::~DeviceGuard() {
  if (changed_) (void)cudaSetDevice(previous_);  // a destructor must not throw
}

Event::Event(bool timing) {
  ZT_CUDA_CHECK(
      cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

Event::~Event() {
  (void)cudaEventDestroy(event_);
}

void Event::record(cudaStream_t stream) {
  ZT_CUDA_CHECK(cudaEventRecord(event_, stream));
}

void Event::wait(cudaStream_t stream) const {
  ZT_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0));
}

void Event::synchronize() const {
  ZT_CUDA_CHECK(cudaEventSynchronize(event_));
}

float Event::elapsed_ms(const Event& later) const {
  float ms = 0;
  ZT_CUDA_CHECK(cudaEventElapsedTime(&ms, event_, later.event_));
  return ms;
}

}  // namespace zt::cuda
