// l1 masks by a stable ordering of magnitudes (so ties never depend on the sort), and the
// cubic gradual-pruning schedule.
#include "compress/pruning_masks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace zt::compress {
namespace {

// 1 for the `kept` largest scores, ties to the lower index.
std::vector<float> keep_largest(const std::vector<double>& scores, int64_t kept) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[size_t(a)] > scores[size_t(b)]; });
  std::vector<float> mask(scores.size(), 0.0f);
  for (int64_t i = 0; i < kept; ++i) mask[size_t(order[size_t(i)])] = 1.0f;
  return mask;
}

}  // namespace

std::vector<float> keep_largest_values(std::span<const float> values, int64_t kept) {
  return keep_largest(std::vector<double>(values.begin(), values.end()), kept);
}

int64_t kept_count(int64_t count, double dense_ratio) {
  if (!(dense_ratio > 0.0 && dense_ratio <= 1.0)) {
    throw std::invalid_argument(
        fmt::format("pruning: dense_ratio {} is outside (0, 1]", dense_ratio));
  }
  return std::clamp<int64_t>(std::llround(double(count) * dense_ratio), 1, count);
}

std::vector<float> l1_sparse_mask(std::span<const float> values, double dense_ratio) {
  std::vector<double> magnitudes(values.size());
  for (size_t i = 0; i < values.size(); ++i) magnitudes[i] = std::fabs(values[i]);
  return keep_largest(magnitudes, kept_count(int64_t(values.size()), dense_ratio));
}

std::vector<float> l1_row_mask(std::span<const float> values, int64_t rows, double dense_ratio) {
  if (rows < 1 || values.size() % size_t(rows) != 0) {
    throw std::invalid_argument(
        fmt::format("pruning: {} values are not {} equal rows", values.size(), rows));
  }
  const size_t row_size = values.size() / size_t(rows);
  std::vector<double> norms(size_t(rows), 0.0);
  for (size_t i = 0; i < values.size(); ++i) norms[i / row_size] += std::fabs(values[i]);
  return keep_largest(norms, kept_count(rows, dense_ratio));
}

double gradual_dense_ratio(int64_t step, int64_t offset, int64_t offset_end, int64_t stride,
                           double final_dense_ratio) {
  if (step < offset) return 1.0;
  if (step >= offset_end) return final_dense_ratio;
  // The schedule moves only on stride boundaries counted from the offset.
  const int64_t settled = offset + (step - offset) / std::max<int64_t>(stride, 1) * stride;
  const double progress = double(settled - offset) / double(offset_end - offset);
  const double final_sparsity = 1.0 - final_dense_ratio;
  const double sparsity = final_sparsity * (1.0 - std::pow(1.0 - progress, 3.0));
  return 1.0 - sparsity;
}

}  // namespace zt::compress
