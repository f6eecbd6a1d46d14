// Tables of DType properties.
#include "core/dtype.h"

#include <stdexcept>
#include <string>

namespace zt {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 4;
    case DType::f64:
      return 8;
    case DType::f16:
      return 2;
    case DType::bf16:
      return 2;
    case DType::i32:
      return 4;
    case DType::i64:
      return 8;
    case DType::u8:
    case DType::i8:
    case DType::i4x2:  // one byte holds two values
      return 1;
  }
  throw std::invalid_argument("dtype_size: unknown dtype");
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f64:
      return "f64";
    case DType::f16:
      return "f16";
    case DType::bf16:
      return "bf16";
    case DType::i32:
      return "i32";
    case DType::i64:
      return "i64";
    case DType::u8:
      return "u8";
    case DType::i8:
      return "i8";
    case DType::i4x2:
      return "i4x2";
  }
  return "unknown";
}

bool is_floating(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f64 || dtype == DType::f16 || dtype == DType::bf16;
}

bool is_half(DType dtype) {
  return dtype == DType::f16 || dtype == DType::bf16;
}

bool is_quantized(DType dtype) {
  return dtype == DType::i8 || dtype == DType::i4x2;
}

double dtype_epsilon(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 1.1920928955078125e-07;  // 2^-23
    case DType::f64:
      return 2.220446049250313e-16;  // 2^-52
    case DType::f16:
      return 0.0009765625;  // 2^-10
    case DType::bf16:
      return 0.0078125;  // 2^-7
    default:
      throw std::invalid_argument("dtype_epsilon: " + std::string(dtype_name(dtype)) +
                                  " is not a floating dtype");
  }
}

}  // namespace zt
