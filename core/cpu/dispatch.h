// Dtype dispatch for CPU kernels: calls a templated lambda with the C++ type of a DType.
//   dispatch_floating(dtype, "softmax", [&]<typename T>() { ... });
// 16-bit types are stored as zt::f16 / zt::bf16 and computed in float: use compute_type<T>.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/dtype.h"
#include "core/half.h"

namespace zt::cpu {

template <typename T>
using compute_type =
    std::conditional_t<std::is_same_v<T, f16> || std::is_same_v<T, bf16>, float, T>;

[[noreturn]] inline void unsupported_dtype(const char* op, DType dtype) {
  throw std::invalid_argument(std::string(op) + ": dtype " + std::string(dtype_name(dtype)) +
                              " is not supported");
}

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
      fn.template operator()<f16>();
      return;
    case DType::bf16:
      fn.template operator()<bf16>();
      return;
    default:
      unsupported_dtype(op, dtype);
  }
}

template <typename Fn>
void dispatch_all(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::i32: fn.template operator()<int32_t>(); return;
    case DType::i64: fn.template operator()<int64_t>(); return;
    case DType::u8: fn.template operator()<uint8_t>(); return;
    default: dispatch_floating(dtype, op, fn);
  }
}

}  // namespace zt::cpu
