// The fused updates in 8 lanes of AVX2 with FMA (core/cpu/optimizer_paths.h). This unit is
// compiled with -mavx2 -mfma -ffp-contract=off (Makefile): the compiler fuses nothing by itself,
// so the only fused multiply-adds are the arithmetic's own. Called only where the processor has
// both (has_avx2_fma()).
#if defined(__x86_64__)
#include <immintrin.h>

#include "core/cpu/optimizer_paths.h"

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
