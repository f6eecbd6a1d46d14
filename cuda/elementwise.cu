// CUDA elementwise kernels: unary math, binary arithmetic and comparisons, fused activation
// backwards, and where, with the CPU backend's semantics (core/cpu/cpu_elementwise.cpp); the
// unary ops and backwards run the scalar functions of core/unary_ops.h, as the CPU's do. Each
// element is computed independently in compute_t<T> (float for 16-bit types). The op is a
// runtime argument of one kernel per dtype rather than a template parameter: the branch is
// uniform across the grid, costs nothing next to the memory traffic, and keeps the number of
// kernels (and the compile time) down by a factor of the number of ops.
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

template <typename C>
__device__ inline bool is_nan(C value) {
  if constexpr (std::is_floating_point_v<C>) {
    return value != value;
  } else {
    return false;
  }
}

// The op's struct of core/unary_ops.h, for the dtypes it supports (the host rejects the rest).
template <typename C>
__device__ inline C apply_unary(UnaryOp op, C x) {
  switch (op) {
#define ZT_UNARY_APPLY_CASE(name, Struct)                         \
  case UnaryOp::name:                                             \
    if constexpr (unary_math::kSupports<unary_math::Struct, C>) { \
      return unary_math::Struct::forward(x);                      \
    }                                                             \
    break;
    ZT_UNARY_OPS(ZT_UNARY_APPLY_CASE, ZT_UNARY_APPLY_CASE)
#undef ZT_UNARY_APPLY_CASE
  }
  return x;  // unreachable: the host rejects ops a dtype does not support
}

template <typename C>
__device__ inline C apply_binary(BinaryOp op, C a, C b) {
  switch (op) {
    case BinaryOp::add:
      return C(a + b);
    case BinaryOp::sub:
      return C(a - b);
    case BinaryOp::mul:
      return C(a * b);
    // maximum/minimum propagate NaN like PyTorch.
    case BinaryOp::maximum:
      return (is_nan(a) || a > b) ? a : b;
    case BinaryOp::minimum:
      return (is_nan(a) || a < b) ? a : b;
    default:
      break;
  }
  if constexpr (std::is_floating_point_v<C>) {
    switch (op) {
      case BinaryOp::div:
        return a / b;
      case BinaryOp::pow:
        return pow(a, b);
#define ZT_BACKWARD_APPLY_CASE(name, Struct) \
  case BinaryOp::name##_backward:            \
    return unary_math::Struct::backward(a, b);
        ZT_UNARY_OPS(ZT_UNARY_SKIP, ZT_BACKWARD_APPLY_CASE)
#undef ZT_BACKWARD_APPLY_CASE
      default:
        break;
    }
  }
  return a;  // unreachable: the host rejects ops a dtype does not support
}

template <typename C>
__device__ inline uint8_t apply_comparison(BinaryOp op, C a, C b) {
  switch (op) {
    case BinaryOp::eq:
      return a == b;
    case BinaryOp::ne:
      return a != b;
    case BinaryOp::lt:
      return a < b;
    case BinaryOp::le:
      return a <= b;
    case BinaryOp::gt:
      return a > b;
    default:
      return a >= b;  // ge
  }
}

template <typename T>
struct UnaryFn {
  UnaryOp op;
  __device__ T operator()(T x) const { return store_compute<T>(apply_unary(op, load_compute(x))); }
};

template <typename T>
struct BinaryFn {
  BinaryOp op;
  __device__ T operator()(T a, T b) const {
    return store_compute<T>(apply_binary(op, load_compute(a), load_compute(b)));
  }
};

template <typename T>
struct CompareFn {
  BinaryOp op;
  __device__ uint8_t operator()(T a, T b) const {
    return apply_comparison(op, load_compute(a), load_compute(b));
  }
};

template <typename T>
struct WhereFn {
  __device__ T operator()(uint8_t condition, T a, T b) const { return condition != 0 ? a : b; }
};

}  // namespace

void CudaBackend::unary(UnaryOp op, const Tensor& in, const Tensor& out) {
  if (!is_floating(in.dtype()) && !unary_accepts_integers(op)) {
    unsupported_dtype("unary", in.dtype());
  }
  KernelScope scope(out.device());
  dispatch_all(in.dtype(), "unary",
               [&]<typename T>() { launch_elementwise<T, T>(scope, UnaryFn<T>{op}, out, {&in}); });
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (!is_floating(a.dtype()) && !binary_accepts_integers(op))
    unsupported_dtype("binary", a.dtype());
  KernelScope scope(out.device());
  dispatch_all(a.dtype(), "binary", [&]<typename T>() {
    if (is_comparison(op)) {
      launch_elementwise<uint8_t, T, T>(scope, CompareFn<T>{op}, out, {&a, &b});
    } else {
      launch_elementwise<T, T, T>(scope, BinaryFn<T>{op}, out, {&a, &b});
    }
  });
}

void CudaBackend::where(const Tensor& condition, const Tensor& a, const Tensor& b,
                        const Tensor& out) {
  KernelScope scope(out.device());
  dispatch_all(out.dtype(), "where", [&]<typename T>() {
    launch_elementwise<T, uint8_t, T, T>(scope, WhereFn<T>{}, out, {&condition, &a, &b});
  });
}

}  // namespace zt::cuda
