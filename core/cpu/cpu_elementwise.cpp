// CPU elementwise kernels: unary math, binary arithmetic and comparisons, fused activation
// backwards, and where; the unary ops and backwards run the scalar functions of
// core/unary_ops.h, which the CUDA kernels share. Inputs arrive already broadcast to out's
// shape (stride 0 where broadcast). Invariant: each element is computed independently, in
// compute_type<T> (float for 16-bit types), so results do not depend on chunking or thread count.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/cpu_gelu_tanh.h"
#include "core/cpu/dispatch.h"
#include "core/cpu/strided_loop.h"

namespace zt::cpu {

namespace {

template <typename T>
constexpr bool is_half_type = std::is_same_v<T, f16> || std::is_same_v<T, bf16>;

// ---- loops ---------------------------------------------------------------------------------

// Runs `run(pointers, byte_strides, count)` over every element of same-shape operands. When
// each operand is contiguous or a broadcast scalar (all strides 0), the whole tensor is one
// flat run cut into chunks (the fast path for same-shape and scalar operands); otherwise the
// strided walker handles views and partial broadcasts.
template <size_t N, typename Run>
void elementwise_loop(const std::array<const Tensor*, N>& operands, const Run& run) {
  std::array<char*, N> bases;
  std::array<int64_t, N> flat_strides;
  bool flat = true;
  for (size_t op = 0; op < N && flat; ++op) {
    const Tensor& tensor = *operands[op];
    bool broadcast_scalar = true;
    for (int64_t stride : tensor.strides()) broadcast_scalar = broadcast_scalar && stride == 0;
    bases[op] = static_cast<char*>(tensor.raw_data());
    if (tensor.is_contiguous()) {
      flat_strides[op] = int64_t(tensor.element_size());
    } else if (broadcast_scalar) {
      flat_strides[op] = 0;
    } else {
      flat = false;
    }
  }
  if (!flat) {
    strided_for_each<N>(operands, kElementwiseGrain, run);
    return;
  }
  parallel_for(0, operands[0]->numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
    std::array<char*, N> pointers;
    for (size_t op = 0; op < N; ++op) pointers[op] = bases[op] + begin * flat_strides[op];
    run(pointers, flat_strides, end - begin);
  });
}

template <typename T>
inline T load(const char* pointer, int64_t stride, int64_t index) {
  T value;
  std::memcpy(&value, pointer + index * stride, sizeof(T));
  return value;
}

template <typename T>
inline void store(char* pointer, int64_t stride, int64_t index, T value) {
  std::memcpy(pointer + index * stride, &value, sizeof(T));
}

// ---- unary: the ops of core/unary_ops.h ---------------------------------------------------

// The op's forward and backward as the CPU computes them: core/unary_ops.h's, except where a
// vectorisable f32 form replaces a scalar libm call (GELU's tanh form, GPT's activation: see
// cpu_gelu_tanh.h, whose dense loops the contiguous paths below call).
template <typename Op, typename C>
struct CpuUnary {
  static C forward(C x) { return Op::forward(x); }
  static C backward(C grad, C saved) { return Op::backward(grad, saved); }
};

template <>
struct CpuUnary<unary_math::GeluTanh, float> {
  static float forward(float x) { return gelu_tanh_forward_f32(x); }
  static float backward(float grad, float x) { return gelu_tanh_backward_f32(grad, x); }
};

template <typename Op, typename T>
void unary_run(std::array<char*, 2> pointers, std::array<int64_t, 2> strides, int64_t count) {
  using C = compute_type<T>;
  constexpr int64_t element = sizeof(T);
  if (strides[0] == element && strides[1] == element) {
    T* out = reinterpret_cast<T*>(pointers[0]);
    const T* in = reinterpret_cast<const T*>(pointers[1]);
    if constexpr (std::is_same_v<Op, unary_math::GeluTanh> && std::is_same_v<T, float>) {
      gelu_tanh_forward_f32(in, out, count);
    } else if constexpr (is_half_type<T>) {
      for (int64_t i = 0; i < count; ++i) out[i] = T(CpuUnary<Op, C>::forward(C(in[i])));
    } else {
#pragma omp simd
      for (int64_t i = 0; i < count; ++i) out[i] = CpuUnary<Op, C>::forward(C(in[i]));
    }
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    C value = C(load<T>(pointers[1], strides[1], i));
    store<T>(pointers[0], strides[0], i, T(CpuUnary<Op, C>::forward(value)));
  }
}

// Calls fn.operator()<Struct>() for the op's struct of core/unary_ops.h.
template <typename Fn>
void dispatch_unary_op(UnaryOp op, Fn&& fn) {
  switch (op) {
#define ZT_UNARY_DISPATCH_CASE(name, Struct)      \
  case UnaryOp::name:                             \
    fn.template operator()<unary_math::Struct>(); \
    return;
    ZT_UNARY_OPS(ZT_UNARY_DISPATCH_CASE, ZT_UNARY_DISPATCH_CASE)
#undef ZT_UNARY_DISPATCH_CASE
  }
}

// ---- binary --------------------------------------------------------------------------------

template <BinaryOp Op>
constexpr bool is_comparison() {
  return Op == BinaryOp::eq || Op == BinaryOp::ne || Op == BinaryOp::lt || Op == BinaryOp::le ||
         Op == BinaryOp::gt || Op == BinaryOp::ge;
}

template <BinaryOp Op, typename C>
constexpr bool binary_supports() {
  if constexpr (std::is_floating_point_v<C>) return true;
  return is_comparison<Op>() || Op == BinaryOp::add || Op == BinaryOp::sub || Op == BinaryOp::mul ||
         Op == BinaryOp::maximum || Op == BinaryOp::minimum;
}

template <typename C>
inline bool is_nan(C value) {
  if constexpr (std::is_floating_point_v<C>) return value != value;
  return false;
}

// Arithmetic returns C; comparisons return 0 or 1.
template <BinaryOp Op, typename C>
inline auto apply_binary(C a, C b) {
  if constexpr (Op == BinaryOp::eq) return uint8_t(a == b);
  if constexpr (Op == BinaryOp::ne) return uint8_t(a != b);
  if constexpr (Op == BinaryOp::lt) return uint8_t(a < b);
  if constexpr (Op == BinaryOp::le) return uint8_t(a <= b);
  if constexpr (Op == BinaryOp::gt) return uint8_t(a > b);
  if constexpr (Op == BinaryOp::ge) return uint8_t(a >= b);
  if constexpr (!is_comparison<Op>()) {
    if constexpr (Op == BinaryOp::add) return C(a + b);
    if constexpr (Op == BinaryOp::sub) return C(a - b);
    if constexpr (Op == BinaryOp::mul) return C(a * b);
    // maximum/minimum propagate NaN like PyTorch.
    if constexpr (Op == BinaryOp::maximum) return (is_nan(a) || a > b) ? a : b;
    if constexpr (Op == BinaryOp::minimum) return (is_nan(a) || a < b) ? a : b;
    if constexpr (std::is_floating_point_v<C>) {
      if constexpr (Op == BinaryOp::div) return C(a / b);
      if constexpr (Op == BinaryOp::pow) return C(std::pow(a, b));
#define ZT_BACKWARD_APPLY(name, Struct)          \
  if constexpr (Op == BinaryOp::name##_backward) \
    return CpuUnary<unary_math::Struct, C>::backward(a, b);
      ZT_UNARY_OPS(ZT_UNARY_SKIP, ZT_BACKWARD_APPLY)
#undef ZT_BACKWARD_APPLY
    }
    return a;  // unreachable: binary_supports filters the rest
  }
}

template <BinaryOp Op, typename T>
void binary_run(std::array<char*, 3> pointers, std::array<int64_t, 3> strides, int64_t count) {
  using C = compute_type<T>;
  using Out = std::conditional_t<is_comparison<Op>(), uint8_t, T>;
  constexpr int64_t element = sizeof(T);
  constexpr int64_t out_element = sizeof(Out);
  char* out_bytes = pointers[0];
  const char* a_bytes = pointers[1];
  const char* b_bytes = pointers[2];
  if constexpr (!is_half_type<T>) {
    if (strides[0] == out_element && strides[1] == element && strides[2] == element) {
      Out* out = reinterpret_cast<Out*>(out_bytes);
      const T* a = reinterpret_cast<const T*>(a_bytes);
      const T* b = reinterpret_cast<const T*>(b_bytes);
      if constexpr (Op == BinaryOp::gelu_tanh_backward && std::is_same_v<T, float>) {
        gelu_tanh_backward_f32(a, b, out, count);
        return;
      }
#pragma omp simd
      for (int64_t i = 0; i < count; ++i) out[i] = Out(apply_binary<Op, C>(a[i], b[i]));
      return;
    }
    if (strides[0] == out_element && strides[1] == element && strides[2] == 0) {
      Out* out = reinterpret_cast<Out*>(out_bytes);
      const T* a = reinterpret_cast<const T*>(a_bytes);
      const T b = load<T>(b_bytes, 0, 0);
#pragma omp simd
      for (int64_t i = 0; i < count; ++i) out[i] = Out(apply_binary<Op, C>(a[i], b));
      return;
    }
    if (strides[0] == out_element && strides[1] == 0 && strides[2] == element) {
      Out* out = reinterpret_cast<Out*>(out_bytes);
      const T a = load<T>(a_bytes, 0, 0);
      const T* b = reinterpret_cast<const T*>(b_bytes);
#pragma omp simd
      for (int64_t i = 0; i < count; ++i) out[i] = Out(apply_binary<Op, C>(a, b[i]));
      return;
    }
  }
  for (int64_t i = 0; i < count; ++i) {
    C a = C(load<T>(a_bytes, strides[1], i));
    C b = C(load<T>(b_bytes, strides[2], i));
    store<Out>(out_bytes, strides[0], i, Out(apply_binary<Op, C>(a, b)));
  }
}

template <typename Fn>
void dispatch_binary_op(BinaryOp op, Fn&& fn) {
  switch (op) {
    case BinaryOp::add:
      fn.template operator()<BinaryOp::add>();
      return;
    case BinaryOp::sub:
      fn.template operator()<BinaryOp::sub>();
      return;
    case BinaryOp::mul:
      fn.template operator()<BinaryOp::mul>();
      return;
    case BinaryOp::div:
      fn.template operator()<BinaryOp::div>();
      return;
    case BinaryOp::pow:
      fn.template operator()<BinaryOp::pow>();
      return;
    case BinaryOp::maximum:
      fn.template operator()<BinaryOp::maximum>();
      return;
    case BinaryOp::minimum:
      fn.template operator()<BinaryOp::minimum>();
      return;
    case BinaryOp::eq:
      fn.template operator()<BinaryOp::eq>();
      return;
    case BinaryOp::ne:
      fn.template operator()<BinaryOp::ne>();
      return;
    case BinaryOp::lt:
      fn.template operator()<BinaryOp::lt>();
      return;
    case BinaryOp::le:
      fn.template operator()<BinaryOp::le>();
      return;
    case BinaryOp::gt:
      fn.template operator()<BinaryOp::gt>();
      return;
    case BinaryOp::ge:
      fn.template operator()<BinaryOp::ge>();
      return;
#define ZT_BACKWARD_DISPATCH_CASE(name, Struct)          \
  case BinaryOp::name##_backward:                        \
    fn.template operator()<BinaryOp::name##_backward>(); \
    return;
      ZT_UNARY_OPS(ZT_UNARY_SKIP, ZT_BACKWARD_DISPATCH_CASE)
#undef ZT_BACKWARD_DISPATCH_CASE
  }
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& in, const Tensor& out) {
  dispatch_all(in.dtype(), "unary", [&]<typename T>() {
    dispatch_unary_op(op, [&]<typename Op>() {
      if constexpr (unary_math::kSupports<Op, compute_type<T>>) {
        elementwise_loop<2>({&out, &in}, unary_run<Op, T>);
      } else {
        unsupported_dtype("unary", in.dtype());
      }
    });
  });
}

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_all(a.dtype(), "binary", [&]<typename T>() {
    dispatch_binary_op(op, [&]<BinaryOp Op>() {
      if constexpr (binary_supports<Op, compute_type<T>>()) {
        elementwise_loop<3>({&out, &a, &b}, binary_run<Op, T>);
      } else {
        unsupported_dtype("binary", a.dtype());
      }
    });
  });
}

void CpuBackend::where(const Tensor& condition, const Tensor& a, const Tensor& b,
                       const Tensor& out) {
  dispatch_all(out.dtype(), "where", [&]<typename T>() {
    elementwise_loop<4>(
        {&out, &condition, &a, &b},
        [](std::array<char*, 4> pointers, std::array<int64_t, 4> strides, int64_t count) {
          for (int64_t i = 0; i < count; ++i) {
            bool take_a = load<uint8_t>(pointers[1], strides[1], i) != 0;
            T value =
                take_a ? load<T>(pointers[2], strides[2], i) : load<T>(pointers[3], strides[3], i);
            store<T>(pointers[0], strides[0], i, value);
          }
        });
  });
}

}  // namespace zt::cpu
