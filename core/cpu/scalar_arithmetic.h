// The scalar arithmetic type of the optimizers' element functions (core/optimizer_arithmetic.h,
// core/lamb_arithmetic.h): one element at a time, each operation correctly rounded. Only for
// units built with -ffp-contract=off (the Makefile's OPTIMIZER_FLAGS), where the compiler fuses
// nothing; std::fma is the C library's correctly rounded fmaf where the processor has no FMA.
#pragma once

#include <cmath>

namespace zt::cpu {

struct ScalarArithmetic {
  using Value = float;
  static float splat(float value) { return value; }
  static float add(float a, float b) { return a + b; }
  static float sub(float a, float b) { return a - b; }
  static float mul(float a, float b) { return a * b; }
  static float div(float a, float b) { return a / b; }
  static float sqrt(float a) { return std::sqrt(a); }
  static float fma(float a, float b, float c) { return std::fma(a, b, c); }
};

}  // namespace zt::cpu
