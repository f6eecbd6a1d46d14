// CUDA devices: how many there are, which one this process uses, and the per-device context
// (a compute stream, a communication stream and a cuBLAS handle bound to the compute stream).
// Invariants: nothing here touches a GPU until a device is first used, so a machine without
// one can load, register and query the backend; the first real use of a missing device throws
// an error naming it. Every kernel of the backend runs on its device's compute stream, so
// kernels are ordered among themselves without host synchronisation; the communication stream
// is ordered against it only by events (stream_wait), never by host syncs.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace zt::cuda {

// Visible devices; 0 without a driver or a device (never throws, cached after the first call).
int device_count();
// Throws std::runtime_error naming cuda:`index` when it does not exist.
void require_device(int index);
// TF32 tensor cores for f32 GEMM: off by default, so that f32 products keep f32 precision.
void set_allow_tf32(bool allow);
bool allow_tf32();

struct DeviceContext {
  int index = 0;
  cudaStream_t compute_stream = nullptr;
  cudaStream_t comm_stream = nullptr;
  cublasHandle_t blas = nullptr;  // bound to compute_stream
  int multiprocessor_count = 0;
};

// The context of device `index`, created on first use (throws if the device is missing).
// The device is NOT made current: use DeviceGuard around runtime calls.
DeviceContext& context(int index);
cudaStream_t compute_stream(int index);
// Blocks the host until every kernel queued on device `index`'s compute stream has finished.
void synchronize(int index);
// Makes `waiter` wait (on the device, without blocking the host) for the work queued so far
// on `producer`.
void stream_wait(cudaStream_t waiter, cudaStream_t producer);

// Makes device `index` current for its lifetime and restores the previous one after, if this
// process used that one before; otherwise `index` stays current (restoring the never-set
// default, device 0, would create a context there in every rank of the node).
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// A CUDA event created without timing unless asked for; destroyed with the object.
class Event {
 public:
  explicit Event(bool timing = false);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t stream);
  void wait(cudaStream_t stream) const;  // the stream waits for the recorded point
  void synchronize() const;              // the host waits
  float elapsed_ms(const Event& later) const;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace zt::cuda
