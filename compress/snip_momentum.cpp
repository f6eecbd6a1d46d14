// snip_momentum's pieces: the pattern, the geometric schedule of Intel Neural Compressor's
// iterative pruner ("exp" decay, its default), block scores by their mean, and the global
// ranking. The momentum (0.9) and the 98% cap are the pruner's fixed values.
#include "compress/snip_momentum.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <regex>

#include "compress/pruning_masks.h"
#include "dist/config.h"

namespace zt::compress {
namespace {

constexpr double kScoreMomentum = 0.9;
constexpr double kMaxSparsity = 0.98;  // per module, and of the schedule's target

}  // namespace

BlockPattern parse_block_pattern(const std::string& pattern) {
  static const std::regex kPattern("([1-9][0-9]{0,5})x([1-9][0-9]{0,5})");
  std::smatch match;
  if (!std::regex_match(pattern, match, kPattern)) {
    throw dist::ConfigError(fmt::format(
        "compression_training.sparse_pruning.shared_parameters.block_pattern: expected \"NxM\" "
        "(N output rows by M input columns, e.g. \"4x1\"), got \"{}\"",
        pattern));
  }
  return {std::stoll(match[1].str()), std::stoll(match[2].str())};
}

double snip_dense_ratio(int64_t step, int64_t offset, int64_t offset_end, int64_t stride,
                        double dense_ratio) {
  if (step < offset) return 1.0;
  stride = std::max<int64_t>(stride, 1);
  const double target_density = std::max(dense_ratio, 1.0 - kMaxSparsity);
  // The pruner counts (end - start + stride) / stride pruning steps, the first one pruning
  // nothing; with a single one (start == end) it prunes to the target there.
  int64_t later_steps = (offset_end - offset + stride) / stride - 1;
  int64_t done = (std::min(step, offset_end) - offset) / stride;
  if (later_steps == 0) later_steps = done = 1;
  return std::pow(target_density, double(std::min(done, later_steps)) / double(later_steps));
}

int64_t WeightMatrix::columns() const {
  if (input_first) return shape[0];
  int64_t count = 1;
  for (size_t i = 1; i < shape.size(); ++i) count *= shape[i];
  return count;
}

int64_t WeightMatrix::row_of(int64_t index) const {
  return input_first ? index % shape[1] : index / columns();
}

int64_t WeightMatrix::column_of(int64_t index) const {
  if (input_first) return index / shape[1];
  const int64_t within_row = index % columns();
  if (shape.size() != 4) return within_row;
  // [out, in, kh, kw] -> columns ordered (kh, kw, in).
  const int64_t kernel = shape[2] * shape[3];
  const int64_t input = within_row / kernel, position = within_row % kernel;
  return position * shape[1] + input;
}

std::vector<std::vector<float>> snip_block_masks(const std::vector<SnipModule>& modules,
                                                 BlockPattern pattern, double dense_ratio) {
  struct Block {
    double score;
    size_t module;
    int64_t index;
  };
  std::vector<Block> blocks;
  std::vector<int64_t> block_columns(modules.size()), block_counts(modules.size());
  for (size_t m = 0; m < modules.size(); ++m) {
    const WeightMatrix& matrix = modules[m].matrix;
    if (matrix.rows() % pattern.rows != 0 || matrix.columns() % pattern.columns != 0) {
      throw dist::ConfigError(fmt::format(
          "compression_training.sparse_pruning.shared_parameters.block_pattern: {}x{} blocks do "
          "not tile {}'s {}x{} weight matrix",
          pattern.rows, pattern.columns, modules[m].name, matrix.rows(), matrix.columns()));
    }
    block_columns[m] = matrix.columns() / pattern.columns;
    block_counts[m] = matrix.rows() / pattern.rows * block_columns[m];
    std::vector<double> sums(size_t(block_counts[m]), 0.0);
    const std::span<const float> scores = modules[m].scores;
    for (int64_t i = 0; i < int64_t(scores.size()); ++i) {
      const int64_t row = matrix.row_of(i), column = matrix.column_of(i);
      sums[size_t(row / pattern.rows * block_columns[m] + column / pattern.columns)] +=
          scores[size_t(i)];
    }
    const double block_size = double(pattern.rows * pattern.columns);
    for (int64_t b = 0; b < block_counts[m]; ++b)
      blocks.push_back({sums[size_t(b)] / block_size, m, b});
  }
  std::stable_sort(blocks.begin(), blocks.end(),
                   [](const Block& a, const Block& b) { return a.score > b.score; });
  std::vector<std::vector<char>> kept(modules.size());
  std::vector<int64_t> kept_in(modules.size(), 0);
  for (size_t m = 0; m < modules.size(); ++m) kept[m].assign(size_t(block_counts[m]), 0);
  const int64_t keep = kept_count(int64_t(blocks.size()), dense_ratio);
  for (int64_t i = 0; i < keep; ++i) {
    kept[blocks[size_t(i)].module][size_t(blocks[size_t(i)].index)] = 1;
    ++kept_in[blocks[size_t(i)].module];
  }
  // No module loses more than 98% of its blocks: it keeps its best ones up to 2%.
  for (const Block& block : blocks) {
    const int64_t minimum =
        int64_t(std::ceil((1.0 - kMaxSparsity) * double(block_counts[block.module])));
    if (kept_in[block.module] < minimum && !kept[block.module][size_t(block.index)]) {
      kept[block.module][size_t(block.index)] = 1;
      ++kept_in[block.module];
    }
  }
  std::vector<std::vector<float>> masks(modules.size());
  for (size_t m = 0; m < modules.size(); ++m) {
    const WeightMatrix& matrix = modules[m].matrix;
    masks[m].resize(modules[m].scores.size());
    for (int64_t i = 0; i < int64_t(masks[m].size()); ++i) {
      const int64_t row = matrix.row_of(i), column = matrix.column_of(i);
      masks[m][size_t(i)] =
          kept[m][size_t(row / pattern.rows * block_columns[m] + column / pattern.columns)];
    }
  }
  return masks;
}

void accumulate_snip_scores(std::span<float> scores, std::span<const float> weight,
                            std::span<const float> gradient) {
  for (size_t i = 0; i < scores.size(); ++i)
    scores[i] = float(kScoreMomentum * scores[i] + std::fabs(double(weight[i]) * gradient[i]));
}

}  // namespace zt::compress
