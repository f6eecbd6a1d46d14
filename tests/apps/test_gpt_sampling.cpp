// gpt_generate's next-token distribution against probabilities worked out by hand: softmax at a
// temperature, top-k, top-p (Hugging Face's rule: a token stays while the mass ranked above it
// is below p), the two together, ties, and greedy decoding at temperature 0.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "apps/gpt_sampling.h"

using zt::apps::sampling_probabilities;
using zt::apps::SamplingOptions;

namespace {

void check_close(const std::vector<double>& got, const std::vector<double>& expected) {
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-12));
  }
}

}  // namespace

TEST_CASE("sampling probabilities: softmax of logits over the temperature") {
  // ln 1, ln 2, ln 3, ln 4: probabilities 1/10 .. 4/10 at temperature 1.
  std::vector<double> logits = {0.0, std::log(2.0), std::log(3.0), std::log(4.0)};
  check_close(sampling_probabilities(logits, {}), {0.1, 0.2, 0.3, 0.4});
  // Temperature 0.5 squares the weights: 1, 4, 9, 16 over 30.
  check_close(sampling_probabilities(logits, {.temperature = 0.5}),
              {1.0 / 30, 4.0 / 30, 9.0 / 30, 16.0 / 30});
}

TEST_CASE("sampling probabilities: top-k keeps the k best, top-p the smallest set reaching p") {
  std::vector<double> logits = {0.0, std::log(2.0), std::log(3.0), std::log(4.0)};
  check_close(sampling_probabilities(logits, {.top_k = 2}), {0.0, 0.0, 3.0 / 7, 4.0 / 7});
  // Ranked 0.4, 0.3, 0.2, 0.1: the mass above each is 0, 0.4, 0.7, 0.9.
  check_close(sampling_probabilities(logits, {.top_p = 0.5}), {0.0, 0.0, 3.0 / 7, 4.0 / 7});
  check_close(sampling_probabilities(logits, {.top_p = 0.7}), {0.0, 0.0, 3.0 / 7, 4.0 / 7});
  check_close(sampling_probabilities(logits, {.top_p = 0.75}), {0.0, 2.0 / 9, 3.0 / 9, 4.0 / 9});
  check_close(sampling_probabilities(logits, {.top_p = 0.1}), {0.0, 0.0, 0.0, 1.0});
  // top-p on what top-k left: 3/7 and 4/7, the mass above 3/7 is 4/7 >= 0.5, so it goes.
  check_close(sampling_probabilities(logits, {.top_k = 2, .top_p = 0.5}), {0.0, 0.0, 0.0, 1.0});
}

TEST_CASE("sampling probabilities: ties rank the lower id first; temperature 0 is greedy") {
  std::vector<double> logits = {1.0, 3.0, 3.0, 2.0};
  check_close(sampling_probabilities(logits, {.temperature = 0.0}), {0.0, 1.0, 0.0, 0.0});
  check_close(sampling_probabilities(logits, {.top_k = 1}), {0.0, 1.0, 0.0, 0.0});
  std::vector<double> both = sampling_probabilities(logits, {.top_k = 2});
  check_close(both, {0.0, 0.5, 0.5, 0.0});
}
