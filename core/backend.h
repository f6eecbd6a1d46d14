// The Backend interface: every raw kernel a device must provide, and nothing else.
// Kernels never allocate their outputs and never validate user input: the ops layer
// (core/ops/) checks shapes, dtypes and devices, allocates, and calls one kernel. A backend
// is chosen from the device of the tensors; the CPU backend lives in core/cpu/, the CUDA
// backend in cuda/ and registers itself for DeviceType::cuda. The kernels and their contracts
// are listed once, in core/backend_kernels.def; the elementwise unary ops in core/unary_ops.h.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "core/attention_geometry.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/lamb_arithmetic.h"
#include "core/optimizer_arithmetic.h"
#include "core/tensor.h"
#include "core/unary_ops.h"

namespace zt {

class Allocator;

// One entry per line of ZT_UNARY_OPS (core/unary_ops.h), in its order; codes 0 .. count - 1.
#define ZT_UNARY_ENUM_ENTRY(name, Struct) name,
enum class UnaryOp : uint8_t { ZT_UNARY_OPS(ZT_UNARY_ENUM_ENTRY, ZT_UNARY_ENUM_ENTRY) };
#undef ZT_UNARY_ENUM_ENTRY
#define ZT_UNARY_COUNT_ONE(name, Struct) +1
inline constexpr int kUnaryOpCount = 0 ZT_UNARY_OPS(ZT_UNARY_COUNT_ONE, ZT_UNARY_COUNT_ONE);
#undef ZT_UNARY_COUNT_ONE

enum class BinaryOp : uint8_t {
  add,
  sub,
  mul,
  div,
  pow,
  maximum,
  minimum,
  // comparisons: out is u8 holding 0 or 1
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
// fused activation backward, one per activation of core/unary_ops.h: (a = upstream grad,
// b = the forward's input x, or its output y where the op's kBackwardSavesOutput) -> input
// grad, a * d op / dx: relu_backward, gelu_backward, ..., sigmoid_backward (b = y), ...
#define ZT_UNARY_BACKWARD_ENTRY(name, Struct) name##_backward,
  ZT_UNARY_OPS(ZT_UNARY_SKIP, ZT_UNARY_BACKWARD_ENTRY)
#undef ZT_UNARY_BACKWARD_ENTRY
};
// The arithmetic and comparison ops, then the backwards: codes 0 .. count - 1.
#define ZT_UNARY_BACKWARD_COUNT_ONE(name, Struct) +1
inline constexpr int kBinaryOpCount =
    int(BinaryOp::ge) + 1 ZT_UNARY_OPS(ZT_UNARY_SKIP, ZT_UNARY_BACKWARD_COUNT_ONE);
#undef ZT_UNARY_BACKWARD_COUNT_ONE

// The op's name ("relu", "gelu_backward", ...), and whether it also runs on integer dtypes
// (every other op needs a floating dtype).
const char* unary_op_name(UnaryOp op);
const char* binary_op_name(BinaryOp op);
bool unary_accepts_integers(UnaryOp op);
bool binary_accepts_integers(BinaryOp op);
bool is_comparison(BinaryOp op);

enum class ReduceOp : uint8_t { sum, mean, max, min, argmax, argmin, var };

struct GemmArgs {
  // Row-major C[m,n] = alpha * op(A)[m,k] @ op(B)[k,n] + beta * C, repeated `batch` times with
  // the given element strides between matrices. lda/ldb/ldc are row strides in elements of the
  // stored (untransposed) matrices. All three share `dtype` (f32, f64, f16, bf16).
  bool transpose_a = false;
  bool transpose_b = false;
  int64_t m = 0, n = 0, k = 0;
  double alpha = 1.0, beta = 0.0;
  const void* a = nullptr;
  int64_t lda = 0, batch_stride_a = 0;
  const void* b = nullptr;
  int64_t ldb = 0, batch_stride_b = 0;
  void* c = nullptr;
  int64_t ldc = 0, batch_stride_c = 0;
  int64_t batch = 1;
  DType dtype = DType::f32;
};

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t padding_h = 0, padding_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

struct Pool2dParams {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t padding_h = 0, padding_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;  // max pool only
  bool count_include_pad = true;           // avg pool only
};

// ---- fused optimizer updates ----------------------------------------------------------------
// The per-step constants (AdamStepConstants, SgdStepConstants) and the arithmetic every backend
// applies with them: core/optimizer_arithmetic.h.

// One parameter of a multi-tensor update: contiguous f32 tensors of equal numel on the
// backend's device. param and the state tensors are updated in place; grad is read only.
struct AdamOperands {
  Tensor param, grad, exp_avg, exp_avg_sq;
};
// momentum_buffer is ignored (and may be undefined) when !use_momentum.
struct SgdOperands {
  Tensor param, grad, momentum_buffer;
};

// A point in one device's queue of work (Backend::record_event), for ordering and timing.
// Copies share the underlying device event. On the CPU, whose kernels have finished when they
// return, it holds only the host time of the record.
struct BackendEvent {
  Device device;
  double host_seconds = 0.0;     // the CPU's: steady-clock seconds at the record
  std::shared_ptr<void> native;  // a device backend's own event (cuda::Event)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  // The accounted allocator of one device of this backend's type (the CPU has one).
  virtual Allocator& allocator(Device device) = 0;
  // How many devices of this type the machine has; 0 when none (never throws).
  virtual int device_count() const = 0;

  // The kernels of core/backend_kernels.def, each a pure virtual.
#define ZT_BACKEND_KERNEL(return_type, name, parameters) virtual return_type name parameters = 0;
#include "core/backend_kernels.def"
};

// The backend registered for a device type; throws if none is (for example, cuda in a build
// without CUDA).
Backend& backend_for(Device device);
void register_backend(DeviceType type, Backend* backend);
// The backend whose copy() moves data from `from` to `to`: the device one when either is not
// the host, so that the CPU backend never sees device memory.
Backend& backend_for_copy(Device from, Device to);
// Devices of a type: 0 when no backend is registered for it or the machine has none.
int device_count(DeviceType type);
inline int cuda_device_count() {
  return device_count(DeviceType::cuda);
}

}  // namespace zt
