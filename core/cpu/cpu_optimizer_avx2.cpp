// The fused updates in 8 lanes of AVX2 with FMA (core/cpu/optimizer_paths.h). This unit is
// compiled with -mavx2 -mfma -ffp-contract=off (Makefile): the compiler fuses nothing by itself,
// so the only fused multiply-adds are the arithmetic's own. Called only where the processor has
// both (has_avx2_fma()).
#if defined(__x86_64__)
#include <immintrin.h>

#include "core/cpu/optimizer_paths.h"
#include "core/half.h"

namespace zt::cpu {

namespace {

struct Avx2Lanes {
  using Value = __m256;
  using Mask = __m256i;  // a lane is on when its sign bit is set
  static constexpr int64_t kWidth = 8;
  static Value splat(float value) { return _mm256_set1_ps(value); }
  static Value zero() { return _mm256_setzero_ps(); }
  static Value add(Value a, Value b) { return _mm256_add_ps(a, b); }
  static Value sub(Value a, Value b) { return _mm256_sub_ps(a, b); }
  static Value mul(Value a, Value b) { return _mm256_mul_ps(a, b); }
  static Value div(Value a, Value b) { return _mm256_div_ps(a, b); }
  static Value sqrt(Value a) { return _mm256_sqrt_ps(a); }
  static Value fma(Value a, Value b, Value c) { return _mm256_fmadd_ps(a, b, c); }
  static Value load(const float* values) { return _mm256_loadu_ps(values); }
  static Value load(const float* values, Mask mask) { return _mm256_maskload_ps(values, mask); }
  static void store(float* values, Value v) { _mm256_storeu_ps(values, v); }
  static void store(float* values, Value v, Mask mask) { _mm256_maskstore_ps(values, mask, v); }
  // Lanes 0 .. count - 1 on (count < 8).
  static Mask first_lanes(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(count)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }

  // The 16-bit conversions of core/half.h, operation for operation.
  static Value widen_bf16(const uint16_t* values) {
    __m256i bits = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)values));
    return _mm256_castsi256_ps(_mm256_slli_epi32(bits, 16));
  }
  static Value widen_f16(const uint16_t* values) {
    __m256i half = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)values));
    __m256i sign = _mm256_slli_epi32(_mm256_and_si256(half, _mm256_set1_epi32(0x8000)), 16);
    __m256i shifted = _mm256_slli_epi32(_mm256_and_si256(half, _mm256_set1_epi32(0x7fff)), 13);
    // Subnormals become normal in this exact multiply by 2^(127 - 15); infinities and NaNs
    // (exponent all ones) keep their payload.
    __m256i magnitude =
        _mm256_castps_si256(_mm256_mul_ps(_mm256_castsi256_ps(shifted), _mm256_set1_ps(0x1p112f)));
    __m256i exponent = _mm256_and_si256(half, _mm256_set1_epi32(0x7c00));
    __m256i special = _mm256_cmpeq_epi32(exponent, _mm256_set1_epi32(0x7c00));
    __m256i forced = _mm256_or_si256(shifted, _mm256_set1_epi32(0x7f800000));
    magnitude = _mm256_blendv_epi8(magnitude, forced, special);
    return _mm256_castsi256_ps(_mm256_or_si256(sign, magnitude));
  }
  static void narrow_bf16(uint16_t* values, Value v) {
    __m256i bits = _mm256_castps_si256(v);
    __m256i high = _mm256_srli_epi32(bits, 16);
    // Adding 0x7fff plus the lowest kept bit rounds to nearest with ties to even; a NaN keeps
    // its sign and high payload and is made quiet. NaN: magnitude > 0x7f800000, compared as
    // signed, which it is below 2^31.
    __m256i lowest_kept_bit = _mm256_and_si256(high, _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7fff)), lowest_kept_bit), 16);
    __m256i magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff));
    __m256i nan = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7f800000));
    __m256i quiet = _mm256_or_si256(high, _mm256_set1_epi32(0x40));
    rounded = _mm256_blendv_epi8(rounded, quiet, nan);
    // Each 32-bit lane holds 0 .. 0xffff, so the saturating pack keeps it; the pack works per
    // 128-bit half, and the permutation puts lanes 0-3 and 4-7 next to each other.
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(rounded, rounded), 0x08);
    _mm_storeu_si128((__m128i*)values, _mm256_castsi256_si128(packed));
  }
  // Lane by lane (no F16C is assumed with AVX2): this path runs only on processors without
  // AVX-512.
  static void narrow_f16(uint16_t* values, Value v) {
    alignas(32) float lanes[kWidth];
    _mm256_store_ps(lanes, v);
    for (int64_t lane = 0; lane < kWidth; ++lane) values[lane] = float_to_f16_bits(lanes[lane]);
  }
};

}  // namespace

void adam_range_avx2(const AdamRange& range, const AdamStepConstants& k) {
  adam_range_lanes<Avx2Lanes>(range, k);
}

void sgd_range_avx2(const SgdRange& range, const SgdStepConstants& k) {
  sgd_range_lanes<Avx2Lanes>(range, k);
}

}  // namespace zt::cpu
#endif
