// The partition methods; balanced splitting by dynamic programming over prefix sums (a few
// hundred layers at most, so O(parts * layers^2) is nothing).
#include "pipeline/partition.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <regex>
#include <stdexcept>

namespace zt::pipeline {

namespace {

void check_counts(int layers, int parts) {
  if (parts < 1)
    throw std::invalid_argument(fmt::format("pipeline: {} stages: expected >= 1", parts));
  if (layers < parts)
    throw std::invalid_argument(fmt::format(
        "pipeline: {} layers cannot fill {} stages: each stage (and each model chunk of an "
        "interleaved stage) needs at least one layer",
        layers, parts));
}

}  // namespace

std::vector<int> partition_uniform(int layers, int parts) {
  check_counts(layers, parts);
  std::vector<int> bounds{0};
  for (int part = 0; part < parts; ++part)
    bounds.push_back(bounds.back() + layers / parts + (part < layers % parts ? 1 : 0));
  return bounds;
}

std::vector<int> partition_balanced(const std::vector<int64_t>& weights, int parts) {
  const int layers = int(weights.size());
  check_counts(layers, parts);
  std::vector<int64_t> prefix{0};
  for (int64_t weight : weights) prefix.push_back(prefix.back() + weight);
  constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  // best[k][n]: the smallest largest-part weight splitting the first n layers into k parts;
  // cut[k][n]: where the k-th part starts in that split.
  std::vector<std::vector<int64_t>> best(size_t(parts) + 1,
                                         std::vector<int64_t>(size_t(layers) + 1, kNone));
  std::vector<std::vector<int>> cut(size_t(parts) + 1, std::vector<int>(size_t(layers) + 1, 0));
  best[0][0] = 0;
  for (int k = 1; k <= parts; ++k) {
    for (int n = k; n <= layers; ++n) {
      for (int start = k - 1; start < n; ++start) {
        if (best[size_t(k - 1)][size_t(start)] == kNone) continue;
        int64_t largest =
            std::max(best[size_t(k - 1)][size_t(start)], prefix[size_t(n)] - prefix[size_t(start)]);
        if (largest < best[size_t(k)][size_t(n)]) {
          best[size_t(k)][size_t(n)] = largest;
          cut[size_t(k)][size_t(n)] = start;
        }
      }
    }
  }
  std::vector<int> bounds(size_t(parts) + 1);
  bounds[size_t(parts)] = layers;
  for (int k = parts; k >= 1; --k)
    bounds[size_t(k - 1)] = cut[size_t(k)][size_t(bounds[size_t(k)])];
  return bounds;
}

std::vector<int> partition_layers(const std::string& method,
                                  const std::vector<int64_t>& parameter_counts,
                                  const std::vector<std::string>& type_names, int parts) {
  if (method == "uniform") return partition_uniform(int(type_names.size()), parts);
  if (method == "parameters") return partition_balanced(parameter_counts, parts);
  if (method.starts_with("type:")) {
    std::regex pattern(method.substr(5), std::regex::icase);
    std::vector<int64_t> matches;
    for (const std::string& name : type_names)
      matches.push_back(std::regex_search(name, pattern) ? 1 : 0);
    if (std::count(matches.begin(), matches.end(), 1) == 0)
      throw std::invalid_argument(
          fmt::format("pipeline: partition method \"{}\": no layer's type name matches", method));
    return partition_balanced(matches, parts);
  }
  throw std::invalid_argument(
      fmt::format("pipeline: partition method \"{}\": expected \"parameters\", \"uniform\" or "
                  "\"type:REGEX\"",
                  method));
}

}  // namespace zt::pipeline
