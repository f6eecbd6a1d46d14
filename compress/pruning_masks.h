// The masks of pruning: which weights (unstructured), rows of a Linear or output channels of a
// Conv2d (structured) stay, chosen by magnitude (l1), and the gradual schedule of the kept
// fraction. A mask holds 1 for kept and 0 for pruned; ties keep the lower index, so masks are
// the same on every rank.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace zt::compress {

// How many of `count` entries a dense ratio keeps: round(count * ratio), at least 1.
int64_t kept_count(int64_t count, double dense_ratio);

// 1 for the `kept` largest values, ties to the lower index (the ranking every mask uses).
std::vector<float> keep_largest_values(std::span<const float> values, int64_t kept);

// Unstructured l1: keeps the kept_count(values.size(), dense_ratio) values of largest |w|.
std::vector<float> l1_sparse_mask(std::span<const float> values, double dense_ratio);

// Structured l1: `values` is `rows` equal rows (a Linear's weight rows, a Conv2d's output
// channels); keeps the kept_count(rows, dense_ratio) rows of largest l1 norm. One entry a row.
std::vector<float> l1_row_mask(std::span<const float> values, int64_t rows, double dense_ratio);

// The dense ratio at `step` of a gradual schedule (Zhu & Gupta 2017): 1 before `offset`, then
// the sparsity grows as s_f * (1 - (1 - progress)^3) over [offset, offset_end], updated every
// `stride` steps, and stays at s_f = 1 - final_dense_ratio after offset_end. offset_end ==
// offset prunes at once.
double gradual_dense_ratio(int64_t step, int64_t offset, int64_t offset_end, int64_t stride,
                           double final_dense_ratio);

}  // namespace zt::compress
