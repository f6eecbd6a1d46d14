// Sparse layouts the serving tests share (tests/inference/test_sparse_generation.cpp,
// tests/mpi/test_sparse_serving_split.cpp).
#pragma once

#include <cstdint>

#include "core/sparse_layout.h"

namespace zt::testing {

// A causal fixed layout of windows of `window_blocks` blocks, with `patterns` global patterns
// (one per head when patterns equals the heads): past the first window each head attends keys
// of its own, far fewer than dense attention's.
inline SparsityConfig causal_fixed_per_head(int64_t block, int64_t window_blocks,
                                            int64_t patterns) {
  return SparsityConfig{.block = block,
                        .different_layout_per_head = true,
                        .unidirectional = true,
                        .num_local_blocks = window_blocks,
                        .num_different_global_patterns = patterns};
}

}  // namespace zt::testing
