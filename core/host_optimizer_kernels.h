// The host kernels of the fused optimizer updates, over raw f32 pointers, so that both the CPU
// backend (its multi-tensor adam_update / sgd_update) and optim/update_rules.cpp (the span API
// over host memory) run the same code. Declared in core/ so that optim/ need not reach into
// the CPU backend; defined in core/cpu/cpu_optimizer.cpp.
// Invariant: element i of a range depends only on element i of its operands and the constants,
// and every path (scalar, AVX2, AVX-512: core/cpu/optimizer_paths.h) rounds identically, so
// neither the processor, the thread count nor the way the ranges are cut changes a bit.
#pragma once

#include <cstdint>
#include <span>

#include "core/optimizer_arithmetic.h"

namespace zt::cpu {

// `count` elements of one parameter and its Adam state, updated in place.
struct AdamRange {
  float* params;
  const float* grads;
  float* exp_avg;
  float* exp_avg_sq;
  int64_t count;
};

// `count` elements of one parameter and its momentum buffer (nullptr without momentum).
struct SgdRange {
  float* params;
  const float* grads;
  float* momentum_buffer;
  int64_t count;
};

// Updates every range, in parallel over fixed chunks of every range.
void adam_update_ranges(std::span<const AdamRange> ranges, const AdamStepConstants& k);
void sgd_update_ranges(std::span<const SgdRange> ranges, const SgdStepConstants& k);

}  // namespace zt::cpu
