// The fused updates in 16 lanes of AVX-512 (core/cpu/optimizer_paths.h). This unit is compiled
// with -mavx512f -mfma -ffp-contract=off (Makefile): the compiler fuses nothing by itself, so the
// only fused multiply-adds are the arithmetic's own. Called only where the processor has
// AVX-512F (has_avx512()).
#if defined(__x86_64__)
#include <immintrin.h>

#include "core/cpu/optimizer_paths.h"

namespace zt::cpu {

namespace {

struct Avx512Lanes {
  using Value = __m512;
  using Mask = __mmask16;
  static constexpr int64_t kWidth = 16;
  static Value splat(float value) { return _mm512_set1_ps(value); }
  static Value zero() { return _mm512_setzero_ps(); }
  static Value add(Value a, Value b) { return _mm512_add_ps(a, b); }
  static Value sub(Value a, Value b) { return _mm512_sub_ps(a, b); }
  static Value mul(Value a, Value b) { return _mm512_mul_ps(a, b); }
  static Value div(Value a, Value b) { return _mm512_div_ps(a, b); }
  // The masked form with every lane on: GCC 12 warns that the unmasked one's undefined
  // pass-through vector may be used uninitialised.
  static Value sqrt(Value a) { return _mm512_mask_sqrt_ps(a, Mask(0xFFFF), a); }
  static Value fma(Value a, Value b, Value c) { return _mm512_fmadd_ps(a, b, c); }
  // a / c for the step's constant c in (0, 1] (Adam's sqrt(1 - beta2^step)), correctly rounded
  // like div, but on the multipliers instead of the divider, which the square root and the
  // step's quotient keep busy (the update's arithmetic is bound by the divider: measured 1.2-1.3x
  // faster in cache). a is widened to double, multiplied by R = the double nearest 1/c and
  // rounded to float. Why that is RN(a / c) for every float a: y = a * R rounded to double is
  // within (2^-53 + 2^-53 + 2^-106) < 2^-51 relative of Q = a / c, and no float rounding
  // boundary (a midpoint between floats, the overflow threshold among them) lies that close to
  // Q: with Q in [2^e, 2^(e+1)), c = C * 2^b (integer C < 2^24), a - m * c for a midpoint m is
  // a nonzero multiple of 2^(e-24+b) (a midpoint has 25 significant bits and a only 24, so Q is
  // never one), so |Q - m| > 2^(e-24+b) / c > 2^(e-48) while |y - Q| < 2^(e-50). Results below
  // 2^-126 keep the margin (midpoints there are multiples of 2^-150 and c <= 1), and the double
  // product can neither overflow nor underflow. Zeros, infinities and NaNs (payload kept by both
  // conversions) come out as div gives them. Outside (0, 1] (or for a subnormal c) it divides.
  static Value div_by_constant(Value a, float c) {
    const __m512d reciprocal = _mm512_set1_pd(1.0 / double(c));
    if (!(c >= 0x1p-126f && c <= 1.0f)) return div(a, splat(c));
    const __m512d lanes = _mm512_castps_pd(a);
    const __m256 low = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(kAll8, lanes, 0));
    const __m256 high = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(kAll8, lanes, 1));
    const __m256 low_quotient =
        _mm512_maskz_cvtpd_ps(kAll8, _mm512_mul_pd(_mm512_maskz_cvtps_pd(kAll8, low), reciprocal));
    const __m256 high_quotient =
        _mm512_maskz_cvtpd_ps(kAll8, _mm512_mul_pd(_mm512_maskz_cvtps_pd(kAll8, high), reciprocal));
    __m512d quotient =
        _mm512_maskz_insertf64x4(kAll8, _mm512_setzero_pd(), _mm256_castps_pd(low_quotient), 0);
    quotient = _mm512_maskz_insertf64x4(kAll8, quotient, _mm256_castps_pd(high_quotient), 1);
    return _mm512_castpd_ps(quotient);
  }
  static Value load(const float* values) { return _mm512_loadu_ps(values); }
  static Value load(const float* values, Mask mask) { return _mm512_maskz_loadu_ps(mask, values); }
  static void store(float* values, Value v) { _mm512_storeu_ps(values, v); }
  static void store(float* values, Value v, Mask mask) { _mm512_mask_storeu_ps(values, mask, v); }
  // Lanes 0 .. count - 1 on (count < 16).
  static Mask first_lanes(int64_t count) { return Mask((1u << count) - 1u); }

  // The 16-bit conversions of core/half.h, operation for operation, in AVX-512F alone (no
  // BF16 or FP16 extension: vcvtneps2bf16 would read subnormal inputs as zero). The masked
  // forms with every lane on, for the reason given at sqrt.
  static constexpr Mask kAll = Mask(0xFFFF);
  static constexpr __mmask8 kAll8 = __mmask8(0xFF);
  static Value widen_bf16(const uint16_t* values) {
    __m512i bits = _mm512_maskz_cvtepu16_epi32(kAll, _mm256_loadu_si256((const __m256i*)values));
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, bits, 16));
  }
  static Value widen_f16(const uint16_t* values) {
    __m512i half = _mm512_maskz_cvtepu16_epi32(kAll, _mm256_loadu_si256((const __m256i*)values));
    __m512i sign =
        _mm512_maskz_slli_epi32(kAll, _mm512_and_si512(half, _mm512_set1_epi32(0x8000)), 16);
    __m512i shifted =
        _mm512_maskz_slli_epi32(kAll, _mm512_and_si512(half, _mm512_set1_epi32(0x7fff)), 13);
    // Subnormals become normal in this exact multiply by 2^(127 - 15); infinities and NaNs
    // (exponent all ones) keep their payload.
    __m512i magnitude =
        _mm512_castps_si512(_mm512_mul_ps(_mm512_castsi512_ps(shifted), _mm512_set1_ps(0x1p112f)));
    __m512i exponent = _mm512_and_si512(half, _mm512_set1_epi32(0x7c00));
    __mmask16 special = _mm512_cmpeq_epi32_mask(exponent, _mm512_set1_epi32(0x7c00));
    magnitude = _mm512_mask_or_epi32(magnitude, special, shifted, _mm512_set1_epi32(0x7f800000));
    return _mm512_castsi512_ps(_mm512_or_si512(sign, magnitude));
  }
  static void narrow_bf16(uint16_t* values, Value v) {
    __m512i bits = _mm512_castps_si512(v);
    __m512i high = _mm512_maskz_srli_epi32(kAll, bits, 16);
    // Adding 0x7fff plus the lowest kept bit rounds to nearest with ties to even; a NaN keeps
    // its sign and high payload and is made quiet.
    __m512i lowest_kept_bit = _mm512_and_si512(high, _mm512_set1_epi32(1));
    __m512i rounded = _mm512_maskz_srli_epi32(
        kAll, _mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7fff)), lowest_kept_bit),
        16);
    __m512i magnitude = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(magnitude, _mm512_set1_epi32(0x7f800000));
    rounded = _mm512_mask_or_epi32(rounded, nan, high, _mm512_set1_epi32(0x40));
    _mm256_storeu_si256((__m256i*)values, _mm512_maskz_cvtepi32_epi16(kAll, rounded));
  }
  // vcvtps2ph rounds to nearest even with subnormals and overflow as IEEE says, and quiets a
  // NaN keeping its sign and high payload: core/half.h's float_to_f16_bits, checked for every
  // f32 value once and by tests/optim/test_update_paths.cpp on each special class.
  static void narrow_f16(uint16_t* values, Value v) {
    _mm256_storeu_si256(
        (__m256i*)values,
        _mm512_maskz_cvtps_ph(kAll, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
};

}  // namespace

void adam_range_avx512(const AdamRange& range, const AdamStepConstants& k) {
  adam_range_lanes<Avx512Lanes>(range, k);
}

void sgd_range_avx512(const SgdRange& range, const SgdStepConstants& k) {
  sgd_range_lanes<Avx512Lanes>(range, k);
}

}  // namespace zt::cpu
#endif
