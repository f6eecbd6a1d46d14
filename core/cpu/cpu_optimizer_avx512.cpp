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
  static Value load(const float* values) { return _mm512_loadu_ps(values); }
  static Value load(const float* values, Mask mask) { return _mm512_maskz_loadu_ps(mask, values); }
  static void store(float* values, Value v) { _mm512_storeu_ps(values, v); }
  static void store(float* values, Value v, Mask mask) { _mm512_mask_storeu_ps(values, mask, v); }
  // Lanes 0 .. count - 1 on (count < 16).
  static Mask first_lanes(int64_t count) { return Mask((1u << count) - 1u); }
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
