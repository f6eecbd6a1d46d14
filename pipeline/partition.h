// Cutting a list of layers into contiguous parts, one per virtual stage, by DeepSpeed's
// partition methods: "uniform" (layer counts differ by at most one, the first parts taking
// the extra ones), "parameters" (the largest part's parameter count is as small as it can be)
// and "type:REGEX" (the same for the count of layers whose type name matches, ignoring case).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zt::pipeline {

// Part i holds layers [bounds[i], bounds[i + 1]); bounds has parts + 1 entries, from 0 to the
// layer count, and no part is empty. Throws std::invalid_argument when parts < 1 or there are
// fewer layers than parts.
std::vector<int> partition_uniform(int layers, int parts);
// The contiguous split of `weights` into `parts` non-empty parts that minimizes the largest
// part's weight (ties: the earliest such split, part by part).
std::vector<int> partition_balanced(const std::vector<int64_t>& weights, int parts);
// By `method` ("uniform", "parameters", "type:REGEX") over the layers' parameter counts and
// type names; throws std::invalid_argument naming an unknown method or a pattern no layer
// matches.
std::vector<int> partition_layers(const std::string& method,
                                  const std::vector<int64_t>& parameter_counts,
                                  const std::vector<std::string>& type_names, int parts);

}  // namespace zt::pipeline
