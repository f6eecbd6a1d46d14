// The instruction-set paths of the CPU's fused updates over one range: plain scalar code (any
// processor), 8 lanes of AVX2 with FMA and 16 lanes of AVX-512. Each applies the element
// arithmetic of core/optimizer_arithmetic.h, so all give the same bits; the CPU backend picks
// the widest the processor has (core/cpu/cpu_optimizer.cpp), and the tests run each one.
// The vector paths live in translation units compiled for their instruction set
// (cpu_optimizer_avx2.cpp, cpu_optimizer_avx512.cpp, with -ffp-contract=off so that no multiply
// and add is fused unless the arithmetic says so). Their lane types sit in unnamed namespaces,
// so every instantiation of the loop below stays internal to its unit: the linker can never
// hand code built for AVX-512 to a caller on another processor.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/host_optimizer_kernels.h"
#include "core/optimizer_arithmetic.h"

namespace zt::cpu {

void adam_range_scalar(const AdamRange& range, const AdamStepConstants& k);
void sgd_range_scalar(const SgdRange& range, const SgdStepConstants& k);
// Only where has_avx2_fma() / has_avx512() (x86-64).
void adam_range_avx2(const AdamRange& range, const AdamStepConstants& k);
void sgd_range_avx2(const SgdRange& range, const SgdStepConstants& k);
void adam_range_avx512(const AdamRange& range, const AdamStepConstants& k);
void sgd_range_avx512(const SgdRange& range, const SgdStepConstants& k);
bool has_avx2_fma();
bool has_avx512();

// Where a vector path's gradient comes from and where its 16-bit parameter copy goes.
enum class HalfSide { none, bf16, f16 };

// The loop of a vector path over one range: whole vectors of L::kWidth lanes, then the rest
// under a mask (masked-off lanes are neither read nor written). L is an arithmetic type of
// core/optimizer_arithmetic.h that also loads and stores: load(p), load(p, mask), store(p, v),
// store(p, v, mask), first_lanes(n) and zero(); with a 16-bit side also widen_bf16(p),
// widen_f16(p), narrow_bf16(p, v) and narrow_f16(p, v) over whole vectors (the last vector's
// 16-bit lanes go through a padded copy: the 16-bit loads and stores take no mask).
template <typename L, HalfSide kGrad, HalfSide kParam>
inline void adam_range_lanes_with(const AdamRange& r, const AdamStepConstants& constants) {
  using Value = typename L::Value;
  // A copy the stores cannot alias, so that the constants (and what L derives from them) stay
  // in registers through the loop.
  const AdamStepConstants k = constants;
  auto widen = [](const uint16_t* values) {
    if constexpr (kGrad == HalfSide::bf16)
      return L::widen_bf16(values);
    else
      return L::widen_f16(values);
  };
  auto narrow = [](uint16_t* values, Value v) {
    if constexpr (kParam == HalfSide::bf16)
      L::narrow_bf16(values, v);
    else
      L::narrow_f16(values, v);
  };
  auto lanes = [&](int64_t i, int64_t lane_count, auto... mask) {
    constexpr bool kTail = sizeof...(mask) > 0;
    Value param = L::load(r.params + i, mask...);
    Value exp_avg = L::load(r.exp_avg + i, mask...);
    Value exp_avg_sq = L::load(r.exp_avg_sq + i, mask...);
    Value grad;
    if constexpr (kGrad == HalfSide::none) {
      grad = L::load(r.grads + i, mask...);
    } else if constexpr (kTail) {
      uint16_t padded[L::kWidth] = {};
      std::memcpy(padded, r.grads16 + i, size_t(lane_count) * sizeof(uint16_t));
      grad = widen(padded);
    } else {
      grad = widen(r.grads16 + i);
    }
    adam_element<L>(param, grad, exp_avg, exp_avg_sq, k);
    L::store(r.params + i, param, mask...);
    L::store(r.exp_avg + i, exp_avg, mask...);
    L::store(r.exp_avg_sq + i, exp_avg_sq, mask...);
    if constexpr (kParam != HalfSide::none && kTail) {
      uint16_t rounded[L::kWidth];
      narrow(rounded, param);
      std::memcpy(r.params16 + i, rounded, size_t(lane_count) * sizeof(uint16_t));
    } else if constexpr (kParam != HalfSide::none) {
      narrow(r.params16 + i, param);
    }
  };
  // The hardware's prefetchers alone leave the memory idle while the divider works: asking for
  // the lines kPrefetchDistance elements ahead keeps them in flight (measured on 50M parameters
  // at 1 thread: 760 -> 900M parameters/s; 256 and 512 do as well, 1024 and more less).
  // Prefetches past the end of an operand are harmless: they never fault.
  constexpr int64_t kPrefetchDistance = 384;
  auto prefetch = [&](int64_t at) {
    __builtin_prefetch(r.params + at, 1);
    __builtin_prefetch(r.exp_avg + at, 1);
    __builtin_prefetch(r.exp_avg_sq + at, 1);
    if constexpr (kGrad == HalfSide::none)
      __builtin_prefetch(r.grads + at, 0);
    else
      __builtin_prefetch(r.grads16 + at, 0);
    if constexpr (kParam != HalfSide::none) __builtin_prefetch(r.params16 + at, 1);
  };
  int64_t i = 0;
  for (; i + L::kWidth <= r.count; i += L::kWidth) {
    prefetch(i + kPrefetchDistance);
    lanes(i, L::kWidth);
  }
  if (i < r.count) lanes(i, r.count - i, L::first_lanes(r.count - i));
}

// Picks the loop for the range's 16-bit sides, so that the loop itself tests nothing.
template <typename L>
inline void adam_range_lanes(const AdamRange& r, const AdamStepConstants& k) {
  constexpr HalfSide kNone = HalfSide::none, kBf16 = HalfSide::bf16, kF16 = HalfSide::f16;
  const bool grad16 = r.grads16 != nullptr, param16 = r.params16 != nullptr;
  if (!grad16 && !param16) return adam_range_lanes_with<L, kNone, kNone>(r, k);
  if (r.half_dtype == DType::bf16) {
    if (!param16) return adam_range_lanes_with<L, kBf16, kNone>(r, k);
    if (!grad16) return adam_range_lanes_with<L, kNone, kBf16>(r, k);
    return adam_range_lanes_with<L, kBf16, kBf16>(r, k);
  }
  if (!param16) return adam_range_lanes_with<L, kF16, kNone>(r, k);
  if (!grad16) return adam_range_lanes_with<L, kNone, kF16>(r, k);
  adam_range_lanes_with<L, kF16, kF16>(r, k);
}

template <typename L>
inline void sgd_range_lanes(const SgdRange& r, const SgdStepConstants& k) {
  auto lanes = [&](int64_t i, auto... mask) {
    typename L::Value param = L::load(r.params + i, mask...);
    typename L::Value buffer = k.use_momentum ? L::load(r.momentum_buffer + i, mask...) : L::zero();
    sgd_element<L>(param, L::load(r.grads + i, mask...), buffer, k);
    L::store(r.params + i, param, mask...);
    if (k.use_momentum) L::store(r.momentum_buffer + i, buffer, mask...);
  };
  int64_t i = 0;
  for (; i + L::kWidth <= r.count; i += L::kWidth) lanes(i);
  if (i < r.count) lanes(i, L::first_lanes(r.count - i));
}

}  // namespace zt::cpu
