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

// The loop of a vector path over one range: whole vectors of L::kWidth lanes, then the rest
// under a mask (masked-off lanes are neither read nor written). L is an arithmetic type of
// core/optimizer_arithmetic.h that also loads and stores: load(p), load(p, mask), store(p, v),
// store(p, v, mask), first_lanes(n) and zero().
template <typename L>
inline void adam_range_lanes(const AdamRange& r, const AdamStepConstants& k) {
  auto lanes = [&](int64_t i, auto... mask) {
    typename L::Value param = L::load(r.params + i, mask...);
    typename L::Value exp_avg = L::load(r.exp_avg + i, mask...);
    typename L::Value exp_avg_sq = L::load(r.exp_avg_sq + i, mask...);
    adam_element<L>(param, L::load(r.grads + i, mask...), exp_avg, exp_avg_sq, k);
    L::store(r.params + i, param, mask...);
    L::store(r.exp_avg + i, exp_avg, mask...);
    L::store(r.exp_avg_sq + i, exp_avg_sq, mask...);
  };
  int64_t i = 0;
  for (; i + L::kWidth <= r.count; i += L::kWidth) lanes(i);
  if (i < r.count) lanes(i, L::first_lanes(r.count - i));
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
