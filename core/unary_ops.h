// The elementwise unary ops, listed once: ZT_UNARY_OPS below names each op and the struct that
// holds its scalar forward (and, for activations, the derivative of its fused backward). The
// UnaryOp enum, the fused-backward BinaryOps, their names, the CPU and CUDA kernels, the public
// ops (zt::ops::relu, ...) and the differentiable ops (zt::relu, ...) are all generated from it.
// Adding an op: one line in the list and one struct here. Invariant: CPU and CUDA run these very
// functions, in compute precision (float for 16-bit types), so they agree bit for bit wherever
// the two compilers' math functions do.
#pragma once

#include <cmath>
#include <type_traits>

#include "core/host_device.h"

// On the device the CUDA math library's overloads (global namespace), on the host <cmath>'s:
// written out so that no zt::exp(Tensor) in an including file can capture the call.
#if defined(__CUDA_ARCH__)
#define ZT_MATH(name) ::name
#else
#define ZT_MATH(name) std::name
#endif

// X(name, Struct): an op without a fused backward; X_WITH_BACKWARD(name, Struct): an
// activation whose Struct also has backward(grad, saved) and kBackwardSavesOutput (whether
// `saved` is the forward's output rather than its input). The order is the enum's.
#define ZT_UNARY_OPS(X, X_WITH_BACKWARD) \
  X(neg, Neg)                            \
  X(exp, Exp)                            \
  X(log, Log)                            \
  X(sqrt, Sqrt)                          \
  X(rsqrt, Rsqrt)                        \
  X(abs, Abs)                            \
  X_WITH_BACKWARD(tanh, Tanh)            \
  X_WITH_BACKWARD(sigmoid, Sigmoid)      \
  X_WITH_BACKWARD(relu, Relu)            \
  X_WITH_BACKWARD(gelu, Gelu)            \
  X_WITH_BACKWARD(gelu_tanh, GeluTanh)   \
  X(sign, Sign)                          \
  X(square, Square)                      \
  X(reciprocal, Reciprocal)              \
  X_WITH_BACKWARD(silu, Silu)

// Expands to nothing: passed for the half of ZT_UNARY_OPS a generator does not want.
#define ZT_UNARY_SKIP(name, Struct)

namespace zt::unary_math {

inline constexpr double kSqrtHalf = 0.70710678118654752440;       // 1 / sqrt(2)
inline constexpr double kSqrtTwoOverPi = 0.79788456080286535588;  // sqrt(2 / pi)
inline constexpr double kInvSqrtTwoPi = 0.39894228040143267794;   // 1 / sqrt(2 pi)
inline constexpr double kGeluTanhCubic = 0.044715;

// x < 0, written so that unsigned types (u8) do not compare with zero at all.
template <typename C>
ZT_HOST_DEVICE inline bool is_negative(C x) {
  if constexpr (std::is_unsigned_v<C>) {
    return false;
  } else {
    return x < C(0);
  }
}

// Ops that also run on integer dtypes say so; the rest need a floating dtype.
struct Neg {
  static constexpr bool kAcceptsIntegers = true;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return C(-x);
  }
};

struct Abs {
  static constexpr bool kAcceptsIntegers = true;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return is_negative(x) ? C(-x) : x;
  }
};

struct Sign {
  static constexpr bool kAcceptsIntegers = true;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return x > C(0) ? C(1) : (is_negative(x) ? C(-1) : x);
  }
};

struct Square {
  static constexpr bool kAcceptsIntegers = true;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return C(x * x);
  }
};

struct Exp {
  static constexpr bool kAcceptsIntegers = false;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return ZT_MATH(exp)(x);
  }
};

struct Log {
  static constexpr bool kAcceptsIntegers = false;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return ZT_MATH(log)(x);
  }
};

struct Sqrt {
  static constexpr bool kAcceptsIntegers = false;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return ZT_MATH(sqrt)(x);
  }
};

struct Rsqrt {
  static constexpr bool kAcceptsIntegers = false;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return C(1) / ZT_MATH(sqrt)(x);
  }
};

struct Reciprocal {
  static constexpr bool kAcceptsIntegers = false;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return C(1) / x;
  }
};

// ---- activations: forward, and backward(grad, saved) = grad * d forward / dx -------------

struct Tanh {
  static constexpr bool kAcceptsIntegers = false;
  static constexpr bool kBackwardSavesOutput = true;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return ZT_MATH(tanh)(x);
  }
  template <typename C>
  ZT_HOST_DEVICE static C backward(C grad, C y) {
    return grad * (C(1) - y * y);
  }
};

struct Sigmoid {
  static constexpr bool kAcceptsIntegers = false;
  static constexpr bool kBackwardSavesOutput = true;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return C(1) / (C(1) + ZT_MATH(exp)(-x));
  }
  template <typename C>
  ZT_HOST_DEVICE static C backward(C grad, C y) {
    return grad * y * (C(1) - y);
  }
};

struct Relu {
  static constexpr bool kAcceptsIntegers = true;
  static constexpr bool kBackwardSavesOutput = false;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return is_negative(x) ? C(0) : x;  // NaN passes through
  }
  template <typename C>
  ZT_HOST_DEVICE static C backward(C grad, C x) {
    return x > C(0) ? grad : C(0);
  }
};

// x * Phi(x), Phi the standard normal CDF.
struct Gelu {
  static constexpr bool kAcceptsIntegers = false;
  static constexpr bool kBackwardSavesOutput = false;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return C(0.5) * x * (C(1) + ZT_MATH(erf)(x * C(kSqrtHalf)));
  }
  template <typename C>
  ZT_HOST_DEVICE static C backward(C grad, C x) {
    C cdf = C(0.5) * (C(1) + ZT_MATH(erf)(x * C(kSqrtHalf)));
    C pdf = C(kInvSqrtTwoPi) * ZT_MATH(exp)(C(-0.5) * x * x);
    return grad * (cdf + x * pdf);
  }
};

// GELU with Phi approximated through tanh (PyTorch's approximate='tanh').
struct GeluTanh {
  static constexpr bool kAcceptsIntegers = false;
  static constexpr bool kBackwardSavesOutput = false;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    C inner = C(kSqrtTwoOverPi) * (x + C(kGeluTanhCubic) * x * x * x);
    return C(0.5) * x * (C(1) + ZT_MATH(tanh)(inner));
  }
  template <typename C>
  ZT_HOST_DEVICE static C backward(C grad, C x) {
    C inner = C(kSqrtTwoOverPi) * (x + C(kGeluTanhCubic) * x * x * x);
    C t = ZT_MATH(tanh)(inner);
    C inner_derivative = C(kSqrtTwoOverPi) * (C(1) + C(3 * kGeluTanhCubic) * x * x);
    return grad * (C(0.5) * (C(1) + t) + C(0.5) * x * (C(1) - t * t) * inner_derivative);
  }
};

// x * sigmoid(x) (SiLU, or swish); d/dx = sigmoid(x) * (1 + x * (1 - sigmoid(x))).
struct Silu {
  static constexpr bool kAcceptsIntegers = false;
  static constexpr bool kBackwardSavesOutput = false;
  template <typename C>
  ZT_HOST_DEVICE static C forward(C x) {
    return x * (C(1) / (C(1) + ZT_MATH(exp)(-x)));
  }
  template <typename C>
  ZT_HOST_DEVICE static C backward(C grad, C x) {
    C sigmoid = C(1) / (C(1) + ZT_MATH(exp)(-x));
    return grad * (sigmoid * (C(1) + x * (C(1) - sigmoid)));
  }
};

// Whether Op's kernel is instantiated for compute type C.
template <typename Op, typename C>
inline constexpr bool kSupports = std::is_floating_point_v<C> || Op::kAcceptsIntegers;

}  // namespace zt::unary_math
