// The Backend interface: every raw kernel a device must provide, and nothing else.
// Kernels never allocate their outputs and never validate user input: the ops layer
// (core/ops/) checks shapes, dtypes and devices, allocates, and calls one kernel. A backend
// is chosen from the device of the tensors; the CPU backend lives in core/cpu/, the CUDA
// backend in cuda/ and registers itself for DeviceType::cuda.
//
// Conventions for every kernel below:
// - "any strides" means the kernel must honour the tensor's sizes/strides/offset (views,
//   stride-0 broadcast dimensions); "contiguous" means the ops layer guarantees it.
// - Floating kernels support f32, f64, f16 and bf16; 16-bit types are computed in f32.
// - Random kernels take (seed, offset): element i's value depends only on (seed, offset, i),
//   never on thread count or device, so CPU and CUDA produce the same numbers.
#pragma once

#include <cstdint>
#include <span>

#include "core/device.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace zt {

class Allocator;

enum class UnaryOp : uint8_t {
  neg,
  exp,
  log,
  sqrt,
  rsqrt,
  abs,
  tanh,
  sigmoid,
  relu,
  gelu,
  gelu_tanh,
  sign,
  square,
  reciprocal
};

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
  // fused activation backward: (a = upstream grad, b = saved tensor) -> input grad
  relu_backward,       // b = forward input x: a * (x > 0)
  gelu_backward,       // b = forward input x: a * d/dx[x * Phi(x)]
  gelu_tanh_backward,  // b = forward input x, tanh approximation
  sigmoid_backward,    // b = forward output y: a * y * (1 - y)
  tanh_backward,       // b = forward output y: a * (1 - y^2)
};

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
// The per-step constants of one Adam/AdamW update, already rounded to f32 (optim/update_rules.cpp
// computes them from the hyperparameters in double). Every backend applies them in the same
// order of f32 operations, without fused multiply-adds, so CPU and CUDA agree bit for bit.
struct AdamStepConstants {
  float l2_decay = 0.0f;  // torch.optim.Adam's L2 term (0 with decoupled decay)
  float beta1 = 0.0f;
  float one_minus_beta1 = 0.0f;
  float beta2 = 0.0f;
  float one_minus_beta2 = 0.0f;
  float inverse_sqrt_correction2 = 1.0f;  // 1 / sqrt(1 - beta2^step), or 1
  float eps = 0.0f;
  float decay_factor = 1.0f;  // 1 - lr * weight_decay with decoupled decay, else 1
  float step_size = 0.0f;     // lr / (1 - beta1^step), or lr
};

// The per-step constants of one SGD update (PyTorch's semantics).
struct SgdStepConstants {
  float lr = 0.0f;
  float weight_decay = 0.0f;  // L2, added to the gradient
  float momentum = 0.0f;
  float grad_scale = 1.0f;  // 1 - dampening
  bool use_momentum = false;
  bool nesterov = false;
  bool first_step = false;  // the momentum buffer starts as the gradient
};

// One parameter of a multi-tensor update: contiguous f32 tensors of equal numel on the
// backend's device. param and the state tensors are updated in place; grad is read only.
struct AdamOperands {
  Tensor param, grad, exp_avg, exp_avg_sq;
};
// momentum_buffer is ignored (and may be undefined) when !use_momentum.
struct SgdOperands {
  Tensor param, grad, momentum_buffer;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  // The accounted allocator of one device of this backend's type (the CPU has one).
  virtual Allocator& allocator(Device device) = 0;
  // How many devices of this type the machine has; 0 when none (never throws).
  virtual int device_count() const = 0;

  // ---- memory, casts, fills, random -----------------------------------------------------
  // dst = src elementwise; same shape, any strides, any dtypes (a cast when they differ).
  // Float -> integer truncates toward zero; anything -> 16-bit rounds to nearest even.
  // A device backend's copy also takes one operand on the host (or on another device of its
  // type): that is how tensors move between devices (see backend_for_copy).
  virtual void copy(const Tensor& src, const Tensor& dst) = 0;
  virtual void fill(const Tensor& dst, double value) = 0;                 // any strides
  virtual void arange(const Tensor& dst, double start, double step) = 0;  // contiguous 1-d
  virtual void uniform(const Tensor& dst, double low, double high, uint64_t seed,
                       uint64_t offset) = 0;  // contiguous
  virtual void normal(const Tensor& dst, double mean, double stddev, uint64_t seed,
                      uint64_t offset) = 0;  // contiguous

  // ---- elementwise -----------------------------------------------------------------------
  // Inputs are views already broadcast to out's shape (stride 0 where broadcast), any strides.
  // Arithmetic: inputs and out share a dtype. Comparisons: inputs share a dtype, out is u8.
  virtual void unary(UnaryOp op, const Tensor& in, const Tensor& out) = 0;
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) = 0;
  // out = condition != 0 ? a : b; condition is u8.
  virtual void where(const Tensor& condition, const Tensor& a, const Tensor& b,
                     const Tensor& out) = 0;

  // ---- reductions ------------------------------------------------------------------------
  // `in` is contiguous and read as [out.numel(), in.numel() / out.numel()]; each row reduces
  // to one element of the contiguous `out`. argmax/argmin write i64 (first index on ties);
  // var divides by (row length - correction).
  virtual void reduce(ReduceOp op, const Tensor& in, const Tensor& out, int64_t correction) = 0;

  // ---- matrix multiply -------------------------------------------------------------------
  virtual void gemm(const GemmArgs& args) = 0;

  // ---- softmax over the last dimension; contiguous [rows, cols] -------------------------
  virtual void softmax_forward(const Tensor& in, const Tensor& out, bool log) = 0;
  // grad_in from grad_out and the forward output (softmax or log_softmax).
  virtual void softmax_backward(const Tensor& grad_out, const Tensor& out, const Tensor& grad_in,
                                bool log) = 0;

  // ---- cross entropy: logits contiguous [N, C], target i64 [N] --------------------------
  // losses[i] = -(1 - eps) * logp[i, t_i] - eps/C * sum_c logp[i, c]; 0 where t_i ==
  // ignore_index. log_probs [N, C] receives log_softmax(logits) for the backward.
  // A target outside [0, C) that is not ignore_index throws std::out_of_range.
  virtual void cross_entropy_forward(const Tensor& logits, const Tensor& target,
                                     int64_t ignore_index, double label_smoothing,
                                     const Tensor& losses, const Tensor& log_probs) = 0;
  // grad_logits[i, c] = grad_losses[i] * (softmax[i, c] - (1-eps)[c == t_i] - eps/C).
  virtual void cross_entropy_backward(const Tensor& grad_losses, const Tensor& log_probs,
                                      const Tensor& target, int64_t ignore_index,
                                      double label_smoothing, const Tensor& grad_logits) = 0;

  // ---- convolution, NCHW contiguous; weight [C_out, C_in / groups, KH, KW] --------------
  // bias may be undefined.
  virtual void conv2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                              const Tensor& out, const Conv2dParams& params) = 0;
  virtual void conv2d_backward_input(const Tensor& grad_out, const Tensor& weight,
                                     const Tensor& grad_input, const Conv2dParams& params) = 0;
  virtual void conv2d_backward_weight(const Tensor& grad_out, const Tensor& input,
                                      const Tensor& grad_weight, const Conv2dParams& params) = 0;

  // ---- pooling, NCHW contiguous -----------------------------------------------------------
  // indices (i64, out's shape) hold the flat h*W+w position of each max within its plane.
  virtual void max_pool2d_forward(const Tensor& input, const Tensor& out, const Tensor& indices,
                                  const Pool2dParams& params) = 0;
  virtual void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices,
                                   const Tensor& grad_input) = 0;  // grad_input zeroed here
  virtual void avg_pool2d_forward(const Tensor& input, const Tensor& out,
                                  const Pool2dParams& params) = 0;
  virtual void avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_input,
                                   const Pool2dParams& params) = 0;

  // ---- layer norm over the last dimension; contiguous [rows, cols] ----------------------
  // weight and bias [cols] may be undefined; mean and rstd [rows] are f32 for 16-bit inputs,
  // else the input dtype.
  virtual void layer_norm_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                  double eps, const Tensor& out, const Tensor& mean,
                                  const Tensor& rstd) = 0;
  // grad_weight / grad_bias may be undefined (not needed); when defined they are overwritten.
  virtual void layer_norm_backward(const Tensor& grad_out, const Tensor& input, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& weight,
                                   const Tensor& grad_input, const Tensor& grad_weight,
                                   const Tensor& grad_bias) = 0;

  // ---- embedding: weight contiguous [V, D], indices contiguous i64 -----------------------
  // An index outside [0, V) throws std::out_of_range naming it.
  virtual void embedding_forward(const Tensor& weight, const Tensor& indices,
                                 const Tensor& out) = 0;
  // grad_weight [V, D] is accumulated into (+=); rows equal to padding_idx get nothing
  // (padding_idx < 0 means none).
  virtual void embedding_backward(const Tensor& grad_out, const Tensor& indices,
                                  const Tensor& grad_weight, int64_t padding_idx) = 0;

  // ---- indexing along one dimension ------------------------------------------------------
  // out = in.index_select(dim, indices); in/out contiguous, indices contiguous i64 1-d.
  virtual void index_select(const Tensor& in, int64_t dim, const Tensor& indices,
                            const Tensor& out) = 0;
  // out.index_add_(dim, indices, source): out[..., indices[i], ...] += source[..., i, ...].
  virtual void index_add(const Tensor& out, int64_t dim, const Tensor& indices,
                         const Tensor& source) = 0;

  // ---- dropout: contiguous; keep with probability 1 - p, scale kept values by 1/(1-p) ----
  // mask (u8) records which elements were kept; uses the same (seed, offset, i) stream as
  // uniform(): element i is kept when its uniform draw in [0, 1) is >= p.
  virtual void dropout_forward(const Tensor& input, const Tensor& out, const Tensor& mask, double p,
                               uint64_t seed, uint64_t offset) = 0;
  virtual void dropout_backward(const Tensor& grad_out, const Tensor& mask, double p,
                                const Tensor& grad_input) = 0;

  // ---- fused optimizer updates (see AdamStepConstants above) ----------------------------
  // One update of every tensor of the list, all on one device, as one fused call (on CUDA one
  // kernel launch for the whole list). Element i of each tensor depends only on element i of
  // its operands, so the result does not depend on how the list or the work is split.
  virtual void adam_update(std::span<const AdamOperands> tensors, const AdamStepConstants& k) = 0;
  virtual void sgd_update(std::span<const SgdOperands> tensors, const SgdStepConstants& k) = 0;

  // ---- sum of squares of each tensor of a list -----------------------------------------
  // out[i] = sum over tensors[i] of double(x)^2, accumulated in f64, for contiguous floating
  // tensors (f32, f64, f16, bf16) on one device; out.size() == tensors.size(). Deterministic:
  // the order of additions depends only on the sizes, so the same input gives the same bits on
  // every run (the CPU adds in index order; CUDA in a fixed tree). A non-finite element makes
  // its sum non-finite (squares are never negative, so inf cannot cancel), and finite f32 or
  // 16-bit values can never overflow it (each square is below 2^256, far from the f64 limit of
  // 2^1024), so isfinite(out[i]) is also the loss scaler's overflow check, fused into the norm.
  // Blocks the host until the sums are ready (they are returned in host memory).
  virtual void sum_of_squares(std::span<const Tensor> tensors, std::span<double> out) = 0;
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
