// Uniform grids (DeepSpeed's SymQuantizer / AsymQuantizer: scale = 2*absmax/2^b, or
// (max - min)/2^b with a zero point on the grid), ternary (threshold 0.7 * mean |w|, the kept
// values' mean magnitude as alpha) and binary (sign times mean |w|).
#include "compress/quantizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace zt::compress {

GroupGrid grid_of(std::span<const float> group, int bits, bool symmetric) {
  const double levels = std::ldexp(1.0, bits);
  GroupGrid grid;
  if (symmetric) {
    float absmax = 0.0f;
    for (float value : group) absmax = std::max(absmax, std::fabs(value));
    grid.scale = float(2.0 * absmax / levels);
    grid.min_code = -int32_t(levels / 2);
    grid.max_code = int32_t(levels / 2) - 1;
    return grid;
  }
  auto [lowest, highest] = std::minmax_element(group.begin(), group.end());
  grid.scale = float((double(*highest) - double(*lowest)) / levels);
  grid.min_code = 0;
  grid.max_code = int32_t(levels) - 1;
  // The zero point sits on the grid, so that 0 stays exact and codes stay in range.
  if (grid.scale > 0.0f) grid.zero_code = -int32_t(std::nearbyint(*lowest / grid.scale));
  return grid;
}

namespace {

void quantize_on_grid(std::span<float> group, const GroupGrid& grid, bool symmetric,
                      bool stochastic, std::mt19937_64& random) {
  if (grid.scale == 0.0f) {
    // Symmetric: every value is 0. Asymmetric: every value is the same constant, kept as is.
    if (symmetric) std::fill(group.begin(), group.end(), 0.0f);
    return;
  }
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (float& value : group) {
    const double position = double(value) / grid.scale + grid.zero_code;
    const double code = stochastic ? std::floor(position + unit(random)) : std::nearbyint(position);
    const double clamped = std::clamp(code, double(grid.min_code), double(grid.max_code));
    value = float((clamped - grid.zero_code) * grid.scale);
  }
}

void quantize_ternary(std::span<float> group) {
  double sum_abs = 0.0;
  for (float value : group) sum_abs += std::fabs(value);
  const double threshold = 0.7 * sum_abs / double(group.size());
  double kept_sum = 0.0;
  int64_t kept = 0;
  for (float value : group) {
    if (std::fabs(value) > threshold) {
      kept_sum += std::fabs(value);
      ++kept;
    }
  }
  const double alpha = kept == 0 ? 0.0 : kept_sum / double(kept);
  for (float& value : group) {
    value = value > threshold ? float(alpha) : value < -threshold ? float(-alpha) : 0.0f;
  }
}

void quantize_binary(std::span<float> group) {
  double sum_abs = 0.0;
  for (float value : group) sum_abs += std::fabs(value);
  const float mean_abs = float(sum_abs / double(group.size()));
  for (float& value : group) value = value > 0.0f ? mean_abs : value < 0.0f ? -mean_abs : 0.0f;
}

}  // namespace

void fake_quantize(std::span<float> values, const QuantizerSettings& settings) {
  if (settings.groups < 1 || values.size() % size_t(settings.groups) != 0) {
    throw std::invalid_argument(fmt::format("quantize: {} values do not split into {} equal groups",
                                            values.size(), settings.groups));
  }
  if (settings.bits < 1 || settings.bits > 16) {
    throw std::invalid_argument(fmt::format("quantize: {} bits (expected 1..16)", settings.bits));
  }
  if (settings.bits < 3 && !settings.symmetric) {
    throw std::invalid_argument(
        fmt::format("quantize: {} bits is ternary/binary, which is symmetric only", settings.bits));
  }
  if (values.empty()) return;
  const size_t group_size = values.size() / size_t(settings.groups);
  std::mt19937_64 random(settings.seed);
  for (size_t begin = 0; begin < values.size(); begin += group_size) {
    std::span<float> group = values.subspan(begin, group_size);
    if (settings.bits == 1) {
      quantize_binary(group);
    } else if (settings.bits == 2) {
      quantize_ternary(group);
    } else {
      quantize_on_grid(group, grid_of(group, settings.bits, settings.symmetric), settings.symmetric,
                       settings.stochastic, random);
    }
  }
}

void fake_quantize_in_range(std::span<float> values, int bits, bool symmetric, float lowest,
                            float highest) {
  if (bits < 3 || bits > 16) {
    throw std::invalid_argument(
        fmt::format("quantize: {} bits on a fixed range (expected 3..16)", bits));
  }
  const float extremes[2] = {lowest, highest};
  std::mt19937_64 unused;
  quantize_on_grid(values, grid_of(extremes, bits, symmetric), symmetric, false, unused);
}

}  // namespace zt::compress
