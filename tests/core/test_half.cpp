// f16 and bf16 conversions against independent references: the compiler's _Float16 and a
// nearest-value search in double arithmetic.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/half.h"

using namespace zt;

namespace {

// The value of an f16 bit pattern by the IEEE formula, in double.
double f16_reference_value(uint16_t bits) {
  int sign = (bits & 0x8000) ? -1 : 1;
  int exponent = (bits >> 10) & 0x1f;
  int mantissa = bits & 0x3ff;
  if (exponent == 0x1f) {
    return mantissa ? std::numeric_limits<double>::quiet_NaN()
                    : sign * std::numeric_limits<double>::infinity();
  }
  if (exponent == 0) return sign * std::ldexp(double(mantissa), -24);
  return sign * std::ldexp(double(1024 + mantissa), exponent - 25);
}

double bf16_reference_value(uint16_t bits) {
  int sign = (bits & 0x8000) ? -1 : 1;
  int exponent = (bits >> 7) & 0xff;
  int mantissa = bits & 0x7f;
  if (exponent == 0xff) {
    return mantissa ? std::numeric_limits<double>::quiet_NaN()
                    : sign * std::numeric_limits<double>::infinity();
  }
  if (exponent == 0) return sign * std::ldexp(double(mantissa), -133);
  return sign * std::ldexp(double(128 + mantissa), exponent - 134);
}

bool same_value(double expected, float actual) {
  if (std::isnan(expected)) return std::isnan(actual);
  return expected == double(actual) && std::signbit(expected) == std::signbit(actual);
}

}  // namespace

TEST_CASE("f16 to f32 is exact on all 65536 bit patterns") {
  int mismatches = 0;
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    if (!same_value(f16_reference_value(uint16_t(bits)), f16_bits_to_float(uint16_t(bits)))) {
      ++mismatches;
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("bf16 to f32 is exact on all 65536 bit patterns") {
  int mismatches = 0;
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    if (!same_value(bf16_reference_value(uint16_t(bits)), bf16_bits_to_float(uint16_t(bits)))) {
      ++mismatches;
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("f32 to f16 and back returns every one of the 65536 bit patterns") {
  int mismatches = 0;
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    float value = f16_bits_to_float(uint16_t(bits));
    uint16_t back = float_to_f16_bits(value);
    bool is_nan = ((bits >> 10) & 0x1f) == 0x1f && (bits & 0x3ff) != 0;
    // A NaN stays a NaN with its sign (quieted); everything else returns exactly.
    bool ok = is_nan ? (((back >> 10) & 0x1f) == 0x1f && (back & 0x3ff) != 0 &&
                        (back & 0x8000) == (bits & 0x8000))
                     : back == bits;
    if (!ok) ++mismatches;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("f32 to bf16 and back returns every one of the 65536 bit patterns") {
  int mismatches = 0;
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    float value = bf16_bits_to_float(uint16_t(bits));
    uint16_t back = float_to_bf16_bits(value);
    bool is_nan = ((bits >> 7) & 0xff) == 0xff && (bits & 0x7f) != 0;
    bool ok = is_nan ? (((back >> 7) & 0xff) == 0xff && (back & 0x7f) != 0 &&
                        (back & 0x8000) == (bits & 0x8000))
                     : back == bits;
    if (!ok) ++mismatches;
  }
  CHECK(mismatches == 0);
}

// Between every pair of adjacent finite 16-bit values: the exact midpoint rounds to the even
// one, and the floats just below and above it round to the nearer neighbour.
template <typename ToBits, typename ToValue>
int rounding_mismatches_between_neighbours(ToBits to_bits, ToValue value_of, uint16_t max_finite) {
  int mismatches = 0;
  for (uint32_t low = 0; low < max_finite; ++low) {
    double low_value = value_of(uint16_t(low));
    double high_value = value_of(uint16_t(low + 1));
    float midpoint = float((low_value + high_value) / 2);  // exact: f32 has the bits
    uint16_t even = (low & 1) ? uint16_t(low + 1) : uint16_t(low);
    if (to_bits(midpoint) != even) ++mismatches;
    if (to_bits(std::nextafter(midpoint, 0.0f)) != low) ++mismatches;
    if (to_bits(std::nextafter(midpoint, INFINITY)) != low + 1) ++mismatches;
    // Negative values mirror the positive ones.
    if (to_bits(-midpoint) != (even | 0x8000)) ++mismatches;
  }
  return mismatches;
}

TEST_CASE("f32 to f16 rounds to nearest even at every midpoint between neighbours") {
  CHECK(rounding_mismatches_between_neighbours(float_to_f16_bits, f16_reference_value, 0x7bff) ==
        0);
  // Past the largest finite value (65504) by half an ulp or more: infinity.
  CHECK(float_to_f16_bits(65519.99f) == 0x7bff);
  CHECK(float_to_f16_bits(65520.0f) == 0x7c00);
  CHECK(float_to_f16_bits(-1e10f) == 0xfc00);
  CHECK(float_to_f16_bits(std::ldexp(1.0f, -25)) == 0);  // half the smallest subnormal: even
  CHECK(float_to_f16_bits(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 1);
}

TEST_CASE("f32 to bf16 rounds to nearest even at every midpoint between neighbours") {
  CHECK(rounding_mismatches_between_neighbours(float_to_bf16_bits, bf16_reference_value, 0x7f7f) ==
        0);
  CHECK(float_to_bf16_bits(std::numeric_limits<float>::max()) == 0x7f80);  // rounds up to inf
  CHECK(float_to_bf16_bits(-std::numeric_limits<float>::infinity()) == 0xff80);
}

TEST_CASE("f32 to f16 equals the compiler's _Float16 conversion on a sweep of f32 values") {
  int mismatches = 0;
  for (uint64_t bits = 0; bits < (uint64_t(1) << 32); bits += 4093) {
    float value = bits_float(uint32_t(bits));
    _Float16 reference = static_cast<_Float16>(value);
    uint16_t reference_bits;
    std::memcpy(&reference_bits, &reference, 2);
    uint16_t ours = float_to_f16_bits(value);
    bool both_nan = std::isnan(value) && ((ours & 0x7c00) == 0x7c00) && (ours & 0x3ff);
    if (!both_nan && ours != reference_bits) ++mismatches;
  }
  CHECK(mismatches == 0);
}
