// The distribution the inference engine and gpt_generate draw each next token from, as Hugging
// Face's generate() builds it (temperature, then top-k, then top-p, each on what the previous
// left): logits divided by the temperature, softmax, the top_k most probable tokens kept (0: all),
// then the smallest set of the most probable whose probability reaches top_p (1: all),
// renormalised. Temperature 0 puts all the mass on the most probable token (greedy decoding). Among
// equal logits the lower token id ranks first, so exactly top_k tokens stay.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <stdexcept>
#include <vector>

namespace zt::inference {

struct SamplingOptions {
  double temperature = 1.0;  // >= 0
  int64_t top_k = 0;         // >= 0; 0: no limit
  double top_p = 1.0;        // in (0, 1]
};

inline std::vector<double> sampling_probabilities(std::span<const double> logits,
                                                  const SamplingOptions& options) {
  if (logits.empty()) throw std::invalid_argument("sampling_probabilities: no logits");
  std::vector<size_t> ranked(logits.size());
  std::iota(ranked.begin(), ranked.end(), size_t(0));
  std::stable_sort(ranked.begin(), ranked.end(),
                   [&](size_t a, size_t b) { return logits[a] > logits[b]; });
  std::vector<double> probabilities(logits.size(), 0.0);
  if (options.temperature == 0.0) {
    probabilities[ranked[0]] = 1.0;
    return probabilities;
  }
  size_t kept = options.top_k > 0 ? std::min(ranked.size(), size_t(options.top_k)) : ranked.size();
  // Softmax over the kept tokens only: the same as softmax then renormalising over them.
  double largest = logits[ranked[0]] / options.temperature;
  double total = 0.0;
  for (size_t i = 0; i < kept; ++i) {
    double weight = std::exp(logits[ranked[i]] / options.temperature - largest);
    probabilities[ranked[i]] = weight;
    total += weight;
  }
  // top-p: keep the best tokens while the probability before each is below top_p.
  double before = 0.0, kept_total = 0.0;
  for (size_t i = 0; i < kept; ++i) {
    double probability = probabilities[ranked[i]] / total;
    if (i > 0 && before >= options.top_p) {
      for (size_t j = i; j < kept; ++j) probabilities[ranked[j]] = 0.0;
      break;
    }
    before += probability;
    kept_total += probabilities[ranked[i]];
  }
  for (double& probability : probabilities) probability /= kept_total;
  return probabilities;
}

}  // namespace zt::inference
