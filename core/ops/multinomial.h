// Categorical sampling on the framework's generator, without autograd.
#pragma once

#include "core/generator.h"
#include "core/tensor.h"

namespace zt::ops {

// probs [C] or [rows, C] of non-negative, finite weights (not necessarily normalised) ->
// i64 [num_samples] or [rows, num_samples] of category indices. Without replacement a row
// never repeats a category, so it needs num_samples <= its number of positive weights.
// Reserves rows * num_samples counters of `generator` (the default generator when null):
// the same seed gives the same draws on the CPU and on CUDA.
Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement = false,
                   Generator* generator = nullptr);

}  // namespace zt::ops
