// CPU uniform, normal and dropout kernels over contiguous tensors. Element i's value is a pure
// function of (seed, offset + i) through Philox (core/philox.h documents the exact mapping,
// which the CUDA kernels reproduce), so results never depend on threads or chunking.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/cpu/strided_loop.h"
#include "core/philox.h"

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics seed their pass-through operand with a self-initialised
// "undefined" vector, which -Wuninitialized reports at the header's lines (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // clang lacks this group (and -Werror rejects unknown ones)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace zt::cpu {

namespace {

// Philox blocks are ~10x the cost of an add, so smaller chunks still amortise thread start-up.
constexpr int64_t kRandomGrain = 16 * 1024;

// The uniform [0, 1) draw of element `index`: 53 bits for f64, else 24 bits.
template <typename T>
inline double uniform_draw(uint64_t seed, uint64_t offset, int64_t index) {
  philox::Block block = philox::block_for(seed, offset, uint64_t(index));
  if constexpr (std::is_same_v<T, double>) {
    return philox::uniform_53bit(block.word[0], block.word[1]);
  } else {
    return double(philox::uniform_24bit(block.word[0]));
  }
}

// Elements whose keep decisions are computed together: enough lanes for the widest vectors.
constexpr int64_t kDropoutBlock = 64;

// keep[j] = 1 when word 0 of element (first + j)'s Philox block, shifted to its 24-bit draw, is
// at least `threshold` (that is, u >= p), for j < kDropoutBlock. The same rounds as
// philox::philox4x32_10 over lanes held as separate arrays, so that the compiler vectorises
// them; cloned per instruction set because our build targets baseline x86-64.
__attribute__((target_clones("avx2", "default"))) void keep_block_24bit_portable(uint64_t seed,
                                                                                 uint64_t first,
                                                                                 uint32_t threshold,
                                                                                 uint8_t* keep) {
  uint32_t word0[kDropoutBlock], word1[kDropoutBlock], word2[kDropoutBlock], word3[kDropoutBlock];
#pragma omp simd
  for (int64_t j = 0; j < kDropoutBlock; ++j) {
    uint64_t counter = first + uint64_t(j);
    word0[j] = uint32_t(counter);
    word1[j] = uint32_t(counter >> 32);
    word2[j] = 0;
    word3[j] = 0;
  }
  uint32_t key0 = uint32_t(seed), key1 = uint32_t(seed >> 32);
  for (int round = 0; round < philox::kRounds; ++round) {
    if (round > 0) {
      key0 += philox::kKeyBump0;
      key1 += philox::kKeyBump1;
    }
#pragma omp simd
    for (int64_t j = 0; j < kDropoutBlock; ++j) {
      uint64_t product0 = uint64_t(philox::kMultiplier0) * word0[j];
      uint64_t product1 = uint64_t(philox::kMultiplier1) * word2[j];
      uint32_t next0 = uint32_t(product1 >> 32) ^ word1[j] ^ key0;
      uint32_t next2 = uint32_t(product0 >> 32) ^ word3[j] ^ key1;
      word0[j] = next0;
      word1[j] = uint32_t(product1);
      word2[j] = next2;
      word3[j] = uint32_t(product0);
    }
  }
#pragma omp simd
  for (int64_t j = 0; j < kDropoutBlock; ++j) keep[j] = (word0[j] >> 8) >= threshold ? 1 : 0;
}

#if defined(__x86_64__)
// The high and low 32 bits of the 64-bit products multiplier * lanes, lane by lane: vpmuludq
// multiplies the even lanes, and the odd lanes after shifting them down.
[[gnu::target("avx512f")]] inline void multiply_wide(__m512i lanes, __m512i multiplier,
                                                     __m512i& high, __m512i& low) {
  const __mmask16 odd_lanes = 0xAAAA;
  __m512i even_products = _mm512_mul_epu32(lanes, multiplier);
  __m512i odd_products = _mm512_mul_epu32(_mm512_srli_epi64(lanes, 32), multiplier);
  high = _mm512_mask_blend_epi32(odd_lanes, _mm512_srli_epi64(even_products, 32), odd_products);
  low = _mm512_mask_blend_epi32(odd_lanes, even_products, _mm512_slli_epi64(odd_products, 32));
}

// keep_block_24bit_portable with AVX-512 intrinsics, 16 elements per vector kept in registers
// through all ten rounds: about three times faster than what the compiler makes of the
// portable loops, whose 32x32->64-bit multiplies it widens to full 64-bit ones.
[[gnu::target("avx512f")]] void keep_block_24bit_avx512(uint64_t seed, uint64_t first,
                                                        uint32_t threshold, uint8_t* keep) {
  const __m512i lane_index =
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i multiplier0 = _mm512_set1_epi32(int(philox::kMultiplier0));
  const __m512i multiplier1 = _mm512_set1_epi32(int(philox::kMultiplier1));
  for (int64_t j = 0; j < kDropoutBlock; j += 16) {
    uint64_t base = first + uint64_t(j);
    __m512i base_low = _mm512_set1_epi32(int(uint32_t(base)));
    __m512i base_high = _mm512_set1_epi32(int(uint32_t(base >> 32)));
    // counter = base + lane as 64 bits: the low word wraps below base_low where it carries.
    __m512i word0 = _mm512_add_epi32(base_low, lane_index);
    __mmask16 carried = _mm512_cmplt_epu32_mask(word0, base_low);
    __m512i word1 = _mm512_mask_add_epi32(base_high, carried, base_high, _mm512_set1_epi32(1));
    __m512i word2 = _mm512_setzero_si512(), word3 = _mm512_setzero_si512();
    uint32_t key0 = uint32_t(seed), key1 = uint32_t(seed >> 32);
    for (int round = 0; round < philox::kRounds; ++round) {
      if (round > 0) {
        key0 += philox::kKeyBump0;
        key1 += philox::kKeyBump1;
      }
      __m512i high0, low0, high1, low1;
      multiply_wide(word0, multiplier0, high0, low0);
      multiply_wide(word2, multiplier1, high1, low1);
      word0 = _mm512_xor_si512(_mm512_xor_si512(high1, word1), _mm512_set1_epi32(int(key0)));
      word1 = low1;
      word2 = _mm512_xor_si512(_mm512_xor_si512(high0, word3), _mm512_set1_epi32(int(key1)));
      word3 = low0;
    }
    __mmask16 kept =
        _mm512_cmpge_epu32_mask(_mm512_srli_epi32(word0, 8), _mm512_set1_epi32(int(threshold)));
    __m128i kept_bytes = _mm512_cvtepi32_epi8(_mm512_maskz_set1_epi32(kept, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(keep + j), kept_bytes);
  }
}
#endif

// keep[j] for the kDropoutBlock elements from `first`, by the fastest path this processor has.
void keep_block_24bit(uint64_t seed, uint64_t first, uint32_t threshold, uint8_t* keep) {
#if defined(__x86_64__)
  static const bool has_avx512 = __builtin_cpu_supports("avx512f");
  if (has_avx512) {
    keep_block_24bit_avx512(seed, first, threshold, keep);
    return;
  }
#endif
  keep_block_24bit_portable(seed, first, threshold, keep);
}

// out[j] = keep[j] ? in[j] * scale : 0 for j < count, without a branch: the mask is random,
// so a branch mispredicts every few elements. For f32 the select is a bit mask, which the
// compiler vectorises (a ?: it turns back into a branch); dropped elements get +0 either way.
template <typename T>
void apply_keep_mask(const T* __restrict in, const uint8_t* __restrict keep, compute_type<T> scale,
                     T* __restrict out, int64_t count) {
  using C = compute_type<T>;
  if constexpr (std::is_same_v<T, float>) {
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) {
      uint32_t bits = std::bit_cast<uint32_t>(in[j] * scale) & (0u - uint32_t(keep[j] != 0));
      out[j] = std::bit_cast<float>(bits);
    }
  } else {
    for (int64_t j = 0; j < count; ++j) out[j] = T(keep[j] != 0 ? C(in[j]) * scale : C(0));
  }
}

// The smallest 24-bit draw k with k * 2^-24 >= p; p * 2^24 is exact, so this is exact too.
uint32_t keep_threshold_24bit(double p) {
  double scaled = std::ceil(p * 16777216.0);
  return scaled <= 0.0 ? 0u : uint32_t(std::min(scaled, 16777216.0));
}

}  // namespace

void CpuBackend::uniform(const Tensor& dst, double low, double high, uint64_t seed,
                         uint64_t offset) {
  dispatch_floating(dst.dtype(), "uniform", [&]<typename T>() {
    T* out = static_cast<T*>(dst.raw_data());
    const double range = high - low;
    parallel_for(0, dst.numel(), kRandomGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        out[i] = T(compute_type<T>(low + range * uniform_draw<T>(seed, offset, i)));
      }
    });
  });
}

void CpuBackend::normal(const Tensor& dst, double mean, double stddev, uint64_t seed,
                        uint64_t offset) {
  dispatch_floating(dst.dtype(), "normal", [&]<typename T>() {
    T* out = static_cast<T*>(dst.raw_data());
    parallel_for(0, dst.numel(), kRandomGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        philox::Block block = philox::block_for(seed, offset, uint64_t(i));
        double standard = std::is_same_v<T, double> ? philox::normal_from_53bit(block)
                                                    : philox::normal_from_24bit(block);
        out[i] = T(compute_type<T>(mean + stddev * standard));
      }
    });
  });
}

void CpuBackend::dropout_forward(const Tensor& input, const Tensor& out, const Tensor& mask,
                                 double p, uint64_t seed, uint64_t offset) {
  dispatch_floating(input.dtype(), "dropout_forward", [&]<typename T>() {
    using C = compute_type<T>;
    const T* in = static_cast<const T*>(input.raw_data());
    T* result = static_cast<T*>(out.raw_data());
    uint8_t* kept = static_cast<uint8_t*>(mask.raw_data());
    const C scale = C(1.0 / (1.0 - p));
    parallel_for(0, input.numel(), kRandomGrain, [&](int64_t begin, int64_t end) {
      int64_t i = begin;
      if constexpr (!std::is_same_v<T, double>) {  // f64 draws 53 bits: the scalar loop below
        const uint32_t threshold = keep_threshold_24bit(p);
        for (; i + kDropoutBlock <= end; i += kDropoutBlock) {
          keep_block_24bit(seed, offset + uint64_t(i), threshold, kept + i);
          apply_keep_mask<T>(in + i, kept + i, scale, result + i, kDropoutBlock);
        }
      }
      for (; i < end; ++i) {
        bool keep = uniform_draw<T>(seed, offset, i) >= p;
        kept[i] = keep ? 1 : 0;
        result[i] = T(keep ? C(in[i]) * scale : C(0));
      }
    });
  });
}

void CpuBackend::dropout_backward(const Tensor& grad_out, const Tensor& mask, double p,
                                  const Tensor& grad_input) {
  dispatch_floating(grad_out.dtype(), "dropout_backward", [&]<typename T>() {
    using C = compute_type<T>;
    const T* upstream = static_cast<const T*>(grad_out.raw_data());
    const uint8_t* kept = static_cast<const uint8_t*>(mask.raw_data());
    T* result = static_cast<T*>(grad_input.raw_data());
    const C scale = C(1.0 / (1.0 - p));
    parallel_for(0, grad_out.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
      apply_keep_mask<T>(upstream + begin, kept + begin, scale, result + begin, end - begin);
    });
  });
}

}  // namespace zt::cpu
