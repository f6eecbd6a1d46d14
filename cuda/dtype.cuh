// Device-side element types and conversions for the CUDA kernels, and the host-side dtype
// dispatch that picks them. f16/bf16 are stored as __half/__nv_bfloat16 and computed in float,
// as on the CPU. Conversions follow core/cpu/cpu_copy.cpp exactly: float -> integer truncates
// and saturates (NaN -> 0), integer -> integer wraps, anything -> 16-bit rounds once to nearest
// even (a double through a round-to-odd float, which makes the two steps exact).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/dtype.h"

namespace zt::cuda {

template <typename T>
constexpr bool is_half_v = std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

// The type arithmetic happens in: float for 16-bit storage, else the type itself.
template <typename T>
using compute_t = std::conditional_t<is_half_v<T>, float, T>;

template <typename T>
constexpr bool is_floating_v = std::is_floating_point_v<T> || is_half_v<T>;

// Rounds to float; an inexact result gets its lowest mantissa bit set (round to odd).
__device__ inline float double_to_float_round_to_odd(double value) {
  float rounded = __double2float_rn(value);
  if (value != value || double(rounded) == value) return rounded;
  unsigned bits = __float_as_uint(rounded);
  if (bits & 1u) return rounded;
  // rounded is the even neighbour; the odd one lies on the other side of value.
  return double(rounded) > value ? nextafterf(rounded, -INFINITY) : nextafterf(rounded, INFINITY);
}

template <typename Dst>
__device__ inline Dst half_from_float(float value) {
  // NaNs keep their sign and top payload bits, as core/half.h does (the intrinsics return one
  // canonical NaN), so that casts stay bitwise equal to the CPU's for every input.
  if (value != value) {
    unsigned bits = __float_as_uint(value);
    if constexpr (std::is_same_v<Dst, __half>) {
      return __ushort_as_half(static_cast<unsigned short>(((bits >> 16) & 0x8000u) | 0x7e00u |
                                                          ((bits & 0x7fffffffu) >> 13 & 0x3ffu)));
    } else {
      return __ushort_as_bfloat16(static_cast<unsigned short>((bits >> 16) | 0x0040u));
    }
  }
  if constexpr (std::is_same_v<Dst, __half>) {
    return __float2half_rn(value);
  } else {
    return __float2bfloat16_rn(value);
  }
}

template <typename Src>
__device__ inline float half_to_float(Src value) {
  if constexpr (std::is_same_v<Src, __half>) {
    return __half2float(value);
  } else {
    return __bfloat162float(value);
  }
}

template <typename Dst>
struct IntegerRange;  // the saturation bounds of float -> integer, as doubles
template <>
struct IntegerRange<uint8_t> {
  static constexpr double past_max = 256.0, min = 0.0;
  static constexpr uint8_t max_value = 255, min_value = 0;
};
template <>
struct IntegerRange<int32_t> {
  static constexpr double past_max = 2147483648.0, min = -2147483648.0;
  static constexpr int32_t max_value = 2147483647, min_value = -2147483647 - 1;
};
template <>
struct IntegerRange<int64_t> {
  static constexpr double past_max = 9223372036854775808.0, min = -9223372036854775808.0;
  static constexpr int64_t max_value = 9223372036854775807LL,
                           min_value = -9223372036854775807LL - 1;
};

template <typename Dst, typename Src>
__device__ inline Dst convert(Src value) {
  if constexpr (std::is_same_v<Dst, Src>) {
    return value;
  } else if constexpr (is_half_v<Src>) {
    return convert<Dst>(half_to_float(value));
  } else if constexpr (is_half_v<Dst>) {
    if constexpr (std::is_same_v<Src, float>) {
      return half_from_float<Dst>(value);
    } else {
      return half_from_float<Dst>(double_to_float_round_to_odd(double(value)));
    }
  } else if constexpr (std::is_integral_v<Dst> && std::is_floating_point_v<Src>) {
    if (value != value) return Dst(0);
    if (double(value) >= IntegerRange<Dst>::past_max) return IntegerRange<Dst>::max_value;
    if (double(value) <= IntegerRange<Dst>::min - 1.0) return IntegerRange<Dst>::min_value;
    return static_cast<Dst>(value);
  } else {
    return static_cast<Dst>(value);
  }
}

// Load as the compute type, store from it.
template <typename T>
__device__ inline compute_t<T> load_compute(T value) {
  if constexpr (is_half_v<T>) {
    return half_to_float(value);
  } else {
    return value;
  }
}

template <typename T>
__device__ inline T store_compute(compute_t<T> value) {
  if constexpr (is_half_v<T>) {
    return half_from_float<T>(value);
  } else {
    return value;
  }
}

// A double result rounded to T as the CPU's T(compute_type<T>(value)): 16-bit types through
// float (two roundings, on purpose: that is what the CPU does).
template <typename T>
__device__ inline T round_from_double(double value) {
  if constexpr (std::is_same_v<T, double>) {
    return value;
  } else if constexpr (std::is_same_v<T, float>) {
    return __double2float_rn(value);
  } else {
    return half_from_float<T>(__double2float_rn(value));
  }
}

[[noreturn]] inline void unsupported_dtype(const char* op, DType dtype) {
  throw std::invalid_argument(std::string(op) + ": dtype " + std::string(dtype_name(dtype)) +
                              " is not supported on CUDA");
}

// Calls fn.template operator()<T>() with the device storage type of `dtype`.
template <typename Fn>
void dispatch_floating(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      fn.template operator()<float>();
      return;
    case DType::f64:
      fn.template operator()<double>();
      return;
    case DType::f16:
      fn.template operator()<__half>();
      return;
    case DType::bf16:
      fn.template operator()<__nv_bfloat16>();
      return;
    default:
      unsupported_dtype(op, dtype);
  }
}

template <typename Fn>
void dispatch_all(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::i32:
      fn.template operator()<int32_t>();
      return;
    case DType::i64:
      fn.template operator()<int64_t>();
      return;
    case DType::u8:
      fn.template operator()<uint8_t>();
      return;
    default:
      dispatch_floating(dtype, op, fn);
  }
}

}  // namespace zt::cuda
