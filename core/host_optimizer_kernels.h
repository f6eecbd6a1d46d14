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

#include "core/dtype.h"
#include "core/optimizer_arithmetic.h"

namespace zt::cpu {

// `count` elements of one parameter and its Adam state, updated in place. The 16-bit side is
// the offload engine's (f32 master weights and moments on the host, a 16-bit model elsewhere):
// with `grads16` the gradient is read from it, widened exactly, and `grads` is not read (it may
// be null); with `params16` each updated parameter is also written there, rounded as a cast to
// `half_dtype` rounds (core/half.h). Either way it is one pass over memory (the 16-bit
// gradient saves 2 of the update's 28 bytes per element and the copy adds 2), and the bits are
// those of the f32 update of the widened gradient followed by a cast.
struct AdamRange {
  float* params;
  const float* grads;
  float* exp_avg;
  float* exp_avg_sq;
  int64_t count;
  const uint16_t* grads16 = nullptr;
  uint16_t* params16 = nullptr;
  DType half_dtype = DType::bf16;  // of grads16 and params16: bf16 or f16
};

// `count` elements of one parameter and its momentum buffer (nullptr without momentum).
struct SgdRange {
  float* params;
  const float* grads;
  float* momentum_buffer;
  int64_t count;
};

// Updates every range, in parallel over fixed chunks of every range. Throws
// std::invalid_argument when a range has no gradient or a 16-bit side in a dtype other than
// bf16 and f16.
void adam_update_ranges(std::span<const AdamRange> ranges, const AdamStepConstants& k);
void sgd_update_ranges(std::span<const SgdRange> ranges, const SgdStepConstants& k);

}  // namespace zt::cpu
