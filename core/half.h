// IEEE binary16 (f16) and bfloat16 (bf16) storage types with float conversion.
// Invariants: float -> 16-bit rounds to nearest, ties to even; NaN stays NaN (quiet, sign kept);
// overflow goes to infinity; 16-bit -> float is exact. Both are trivially copyable 2-byte values,
// so a buffer of them is the on-disk and on-device layout.
#pragma once

#include <cstdint>
#include <cstring>

namespace zt {

inline uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

inline float bits_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

inline uint16_t float_to_bf16_bits(float value) {
  uint32_t bits = float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  // Adding 0x7fff plus the lowest kept bit rounds to nearest with ties to even.
  uint32_t lowest_kept_bit = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7fffu + lowest_kept_bit) >> 16);
}

inline float bf16_bits_to_float(uint16_t bits) {
  return bits_float(uint32_t(bits) << 16);
}

inline uint16_t float_to_f16_bits(float value) {
  uint32_t bits = float_bits(value);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u)
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (magnitude >= 0x38800000u) {  // normal f16 range: rebias exponent 127 -> 15, round 13 bits
    uint32_t lowest_kept_bit = (magnitude >> 13) & 1u;
    uint32_t rounded = magnitude + 0xfffu + lowest_kept_bit;
    return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
  }
  if (magnitude < 0x33000000u) return sign;  // below half of the smallest subnormal: zero
  // Subnormal f16: value = mantissa * 2^-24; shift the full significand into place with RNE.
  uint32_t exponent = magnitude >> 23;
  uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126u - exponent;  // 14..24 for exponents 102..112
  uint32_t kept = significand >> shift;
  uint32_t remainder = significand & ((1u << shift) - 1u);
  uint32_t halfway = 1u << (shift - 1u);
  if (remainder > halfway || (remainder == halfway && (kept & 1u))) kept += 1u;
  return static_cast<uint16_t>(sign | kept);
}

inline float f16_bits_to_float(uint16_t half_bits) {
  // Exponent and mantissa moved to their f32 places, then rescaled by 2^(127 - 15) in one
  // multiply, which is exact: f16 subnormals arrive as f32 subnormals and leave as normal
  // numbers, so no normalisation loop is needed (this assumes no flush-to-zero/denormals-are-
  // zero mode, which nothing here sets). Only infinities and NaNs (payload kept) are forced.
  uint32_t sign = uint32_t(half_bits & 0x8000u) << 16;
  uint32_t shifted = uint32_t(half_bits & 0x7fffu) << 13;
  uint32_t magnitude = float_bits(bits_float(shifted) * 0x1p112f);
  if ((half_bits & 0x7c00u) == 0x7c00u) magnitude = 0x7f800000u | shifted;
  return bits_float(sign | magnitude);
}

struct f16 {
  uint16_t bits = 0;
  f16() = default;
  explicit f16(float value) : bits(float_to_f16_bits(value)) {}
  static f16 from_bits(uint16_t raw) {
    f16 h;
    h.bits = raw;
    return h;
  }
  operator float() const { return f16_bits_to_float(bits); }
};

struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float value) : bits(float_to_bf16_bits(value)) {}
  static bf16 from_bits(uint16_t raw) {
    bf16 h;
    h.bits = raw;
    return h;
  }
  operator float() const { return bf16_bits_to_float(bits); }
};

static_assert(sizeof(f16) == 2 && sizeof(bf16) == 2);

}  // namespace zt
