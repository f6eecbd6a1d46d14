// A plain-loop attention in f64 for the attention tests: scores, masked softmax and the
// weighted sum written out element by element, independent of every kernel and op of the
// library. Inputs are [batch, L, E], [batch, S, E], [batch, S, Ev] value vectors (row-major).
#pragma once

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

namespace zt::test {

struct LoopAttentionShape {
  int64_t batch, L, S, E, Ev;
};

// keep(b, l, s) says whether (l, s) may attend; bias(b, l, s) is added to its score. A row
// with nothing to attend gives zeros, as PyTorch returns.
inline std::vector<double> loop_attention(
    const LoopAttentionShape& shape, const std::vector<double>& q, const std::vector<double>& k,
    const std::vector<double>& v, double scale,
    const std::function<bool(int64_t, int64_t, int64_t)>& keep,
    const std::function<double(int64_t, int64_t, int64_t)>& bias) {
  const auto [batch, L, S, E, Ev] = shape;
  std::vector<double> out(size_t(batch * L * Ev), 0.0);
  std::vector<double> scores(static_cast<size_t>(S));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t l = 0; l < L; ++l) {
      double max_score = -std::numeric_limits<double>::infinity();
      for (int64_t s = 0; s < S; ++s) {
        double dot = 0.0;
        for (int64_t e = 0; e < E; ++e) {
          dot += q[size_t((b * L + l) * E + e)] * k[size_t((b * S + s) * E + e)];
        }
        scores[size_t(s)] =
            keep(b, l, s) ? dot * scale + bias(b, l, s) : -std::numeric_limits<double>::infinity();
        max_score = std::max(max_score, scores[size_t(s)]);
      }
      if (max_score == -std::numeric_limits<double>::infinity()) continue;
      double total = 0.0;
      for (int64_t s = 0; s < S; ++s) total += std::exp(scores[size_t(s)] - max_score);
      for (int64_t s = 0; s < S; ++s) {
        const double weight = std::exp(scores[size_t(s)] - max_score) / total;
        for (int64_t d = 0; d < Ev; ++d) {
          out[size_t((b * L + l) * Ev + d)] += weight * v[size_t((b * S + s) * Ev + d)];
        }
      }
    }
  }
  return out;
}

}  // namespace zt::test
