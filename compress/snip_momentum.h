// sparse_pruning's "snip_momentum" method, as DeepSpeed runs it through Intel Neural
// Compressor's pruner: each weight's score is a momentum sum of |w * dL/dw| (s <- 0.9 s +
// |w * g| at every step), weights are pruned in blocks of `block_pattern` "NxM" (N output rows
// by M input columns of the weight seen as a matrix) ranked by their mean score over all
// selected modules together (global scope, no module pruned past 98%), and the kept fraction
// falls geometrically on the schedule_offset_stride steps from schedule_offset to
// schedule_offset_end, down to the shared dense_ratio.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace zt::compress {

struct BlockPattern {
  int64_t rows = 4, columns = 1;
};

// "NxM" -> {N, M}. Throws dist::ConfigError naming sparse_pruning's block_pattern otherwise.
BlockPattern parse_block_pattern(const std::string& pattern);

// The kept fraction at `step` (1 before `offset`): at the k-th pruning step (offset + k *
// stride, k = 0, 1, ... while <= offset_end) it becomes dense_ratio^(k / K), K the number of
// pruning steps after the first (its first step prunes nothing); offset == offset_end prunes
// to dense_ratio at once. Sparsity is capped at 0.98, as the pruner does.
double snip_dense_ratio(int64_t step, int64_t offset, int64_t offset_end, int64_t stride,
                        double dense_ratio);

// A weight as the pruner's matrix: rows are output features; a Conv2d's [out, in, kh, kw]
// weight has columns ordered (kh, kw, in), as the pruner permutes it; GPT-2's Conv1D stores
// [in, out] (input_first), which DeepSpeed turns into a Linear first. `shape` is the weight's.
struct WeightMatrix {
  std::vector<int64_t> shape;
  bool input_first = false;
  int64_t rows() const { return input_first ? shape[1] : shape[0]; }
  int64_t columns() const;
  // The matrix row and column of element `index` (row-major in `shape`).
  int64_t row_of(int64_t index) const;
  int64_t column_of(int64_t index) const;
};

// Per-module scores (one a weight element) and the shapes they belong to.
struct SnipModule {
  std::string name;
  WeightMatrix matrix;
  std::span<const float> scores;
};

// Masks (one entry a weight element, 1 kept) that keep the blocks of highest mean score over
// all modules together: round(blocks * dense_ratio) blocks in all, ties to the earlier module
// and block; a module keeps at least 2% of its blocks. Throws dist::ConfigError naming
// block_pattern when a module's matrix does not split into whole blocks.
std::vector<std::vector<float>> snip_block_masks(const std::vector<SnipModule>& modules,
                                                 BlockPattern pattern, double dense_ratio);

// One step of the momentum score: scores = 0.9 scores + |weight * gradient|.
void accumulate_snip_scores(std::span<float> scores, std::span<const float> weight,
                            std::span<const float> gradient);

}  // namespace zt::compress
