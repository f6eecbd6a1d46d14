// The timing helpers the single-process benchmarks share: wall seconds of one call, and the
// median of repeated measurements (robust to a neighbour's burst on a shared machine).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace zt::bench {

inline double seconds_of(const auto& body) {
  auto start = std::chrono::steady_clock::now();
  body();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

inline double median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + int64_t(values.size() / 2), values.end());
  return values[values.size() / 2];
}

}  // namespace zt::bench
