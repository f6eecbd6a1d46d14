// exp and tanh for f32 in branch-free arithmetic that the compiler vectorises, for the CPU's
// elementwise loops; glibc's expf/tanhf are scalar calls (tanhf through expm1f) and made
// GELU's tanh form the slowest op of a GPT's step. Cephes's polynomials: about 2 ulp of exp,
// and tanh within 2 ulp of 1 in absolute terms (what 1 + tanh in GELU needs). The loops that
// use them vectorise under -fno-trapping-math only (the Makefile gives it to their files).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace zt::cpu {

// e^x, x clamped to [-87, 88] (beyond that f32 under- or overflows anyway); NaN stays NaN.
[[gnu::always_inline]] inline float vector_exp(float x) {
  // Value selects rather than std::min/max, which GCC does not if-convert; NaN passes.
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // x = n ln2 + r, |r| <= ln2 / 2; ln2 in two parts so that n * ln2 is exact to f32.
  float scaled = x * 1.44269504088896341f + 0.5f;
  int32_t n = int32_t(scaled);
  n -= int32_t(float(n) > scaled);  // floor for negative values
  float whole = float(n);
  float r = x - whole * 0.693359375f;
  r = r - whole * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  return p * std::bit_cast<float>((n + 127) << 23);
}

// tanh(x): an odd polynomial below 0.625 (no cancellation near 0), 1 - 2 / (e^2|x| + 1) above,
// saturating at |x| = 10, past where f32's tanh rounds to 1.
[[gnu::always_inline]] inline float vector_tanh(float x) {
  float magnitude = std::fabs(x);
  float square = x * x;
  float p = -5.70498872745e-3f;
  p = p * square + 2.06390887954e-2f;
  p = p * square - 5.37397155531e-2f;
  p = p * square + 1.33314422036e-1f;
  p = p * square - 3.33332819422e-1f;
  float near_zero = p * square * x + x;
  float e = vector_exp(2.0f * (magnitude > 10.0f ? 10.0f : magnitude));
  float far = std::copysign(1.0f - 2.0f / (e + 1.0f), x);
  // A select by bit mask: with a conditional, GCC's AVX builds branch around the exp instead
  // of vectorising the loop.
  uint32_t near_mask = 0u - uint32_t(magnitude < 0.625f);
  return std::bit_cast<float>((std::bit_cast<uint32_t>(near_zero) & near_mask) |
                              (std::bit_cast<uint32_t>(far) & ~near_mask));
}

}  // namespace zt::cpu
