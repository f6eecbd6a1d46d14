// Differentiable block-sparse attention (core/ops/block_sparse_attention.h): the node keeps
// the inputs, the output and the per-row log-sum-exp, never a [T, T] matrix, and its backward
// recomputes the weights of the active blocks only.
#pragma once

#include <optional>

#include "core/ops/block_sparse_attention.h"
#include "core/tensor.h"

namespace zt {

// q, k [..., H, T, E], v [..., H, T, Ev] -> [..., H, T, Ev]: softmax(scale q k^T) v over the
// active blocks of `index` (and, for a causal index, keys s <= l). scale defaults to
// 1/sqrt(E).
Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                              const ops::BlockSparseIndex& index,
                              std::optional<double> scale = std::nullopt);

}  // namespace zt
