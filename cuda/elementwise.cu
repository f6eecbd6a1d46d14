// CUDA elementwise kernels: unary math, binary arithmetic and comparisons, fused activation
// backwards, and where, with the CPU backend's semantics (core/cpu/cpu_elementwise.cpp). Each
// element is computed independently in compute_t<T> (float for 16-bit types). The op is a
// runtime argument of one kernel per dtype rather than a template parameter: the branch is
// uniform across the grid, costs nothing next to the memory traffic, and keeps the number of
// kernels (and the compile time) down by a factor of the number of ops.
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

constexpr double kSqrtHalf = 0.70710678118654752440;       // 1 / sqrt(2)
constexpr double kSqrtTwoOverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kInvSqrtTwoPi = 0.39894228040143267794;   // 1 / sqrt(2 pi)
constexpr double kGeluTanhCubic = 0.044715;

bool integer_unary_op(UnaryOp op) {
  return op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::sign || op == UnaryOp::square ||
         op == UnaryOp::relu;
}

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::eq || op == BinaryOp::ne || op == BinaryOp::lt || op == BinaryOp::le ||
         op == BinaryOp::gt || op == BinaryOp::ge;
}

bool integer_binary_op(BinaryOp op) {
  return is_comparison(op) || op == BinaryOp::add || op == BinaryOp::sub || op == BinaryOp::mul ||
         op == BinaryOp::maximum || op == BinaryOp::minimum;
}

template <typename C>
__device__ inline bool is_nan(C value) {
  if constexpr (std::is_floating_point_v<C>) {
    return value != value;
  } else {
    return false;
  }
}

// x < 0, written so that unsigned types (u8) do not compare with zero at all.
template <typename C>
__device__ inline bool is_negative(C x) {
  if constexpr (std::is_unsigned_v<C>) {
    return false;
  } else {
    return x < C(0);
  }
}

template <typename C>
__device__ inline C apply_unary(UnaryOp op, C x) {
  switch (op) {
    case UnaryOp::neg:
      return C(-x);
    case UnaryOp::abs:
      return is_negative(x) ? C(-x) : x;
    case UnaryOp::sign:
      return x > C(0) ? C(1) : (is_negative(x) ? C(-1) : x);
    case UnaryOp::square:
      return C(x * x);
    case UnaryOp::relu:
      return is_negative(x) ? C(0) : x;  // NaN passes through
    default:
      break;
  }
  if constexpr (std::is_floating_point_v<C>) {
    switch (op) {
      case UnaryOp::exp:
        return exp(x);
      case UnaryOp::log:
        return log(x);
      case UnaryOp::sqrt:
        return sqrt(x);
      case UnaryOp::rsqrt:
        return C(1) / sqrt(x);
      case UnaryOp::tanh:
        return tanh(x);
      case UnaryOp::sigmoid:
        return C(1) / (C(1) + exp(-x));
      case UnaryOp::reciprocal:
        return C(1) / x;
      case UnaryOp::gelu:
        return C(0.5) * x * (C(1) + erf(x * C(kSqrtHalf)));
      case UnaryOp::gelu_tanh: {
        C inner = C(kSqrtTwoOverPi) * (x + C(kGeluTanhCubic) * x * x * x);
        return C(0.5) * x * (C(1) + tanh(inner));
      }
      default:
        break;
    }
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
      case BinaryOp::relu_backward:
        return b > C(0) ? a : C(0);
      case BinaryOp::gelu_backward: {
        C cdf = C(0.5) * (C(1) + erf(b * C(kSqrtHalf)));
        C pdf = C(kInvSqrtTwoPi) * exp(C(-0.5) * b * b);
        return a * (cdf + b * pdf);
      }
      case BinaryOp::gelu_tanh_backward: {
        C inner = C(kSqrtTwoOverPi) * (b + C(kGeluTanhCubic) * b * b * b);
        C t = tanh(inner);
        C inner_derivative = C(kSqrtTwoOverPi) * (C(1) + C(3 * kGeluTanhCubic) * b * b);
        return a * (C(0.5) * (C(1) + t) + C(0.5) * b * (C(1) - t * t) * inner_derivative);
      }
      case BinaryOp::sigmoid_backward:
        return a * b * (C(1) - b);
      case BinaryOp::tanh_backward:
        return a * (C(1) - b * b);
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
  if (!is_floating(in.dtype()) && !integer_unary_op(op)) unsupported_dtype("unary", in.dtype());
  KernelScope scope(out.device());
  dispatch_all(in.dtype(), "unary",
               [&]<typename T>() { launch_elementwise<T, T>(scope, UnaryFn<T>{op}, out, {&in}); });
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (!is_floating(a.dtype()) && !integer_binary_op(op)) unsupported_dtype("binary", a.dtype());
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
