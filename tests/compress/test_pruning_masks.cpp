// Pruning masks against hand-worked cases and a reference ordering, and the gradual schedule
// against Zhu & Gupta's formula at chosen steps.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "compress/pruning_masks.h"

using namespace zt::compress;

TEST_CASE("pruning masks: l1 keeps the largest magnitudes, rows by their l1 norm") {
  CHECK(l1_sparse_mask(std::vector<float>{0.1f, -0.5f, 0.3f, 0.05f}, 0.5) ==
        std::vector<float>{0, 1, 1, 0});
  // Rows' l1 norms 2, 3, 1: a third of 3 rows keeps row 1.
  CHECK(l1_row_mask(std::vector<float>{1, 1, -3, 0, 0.5f, 0.5f}, 3, 0.34) ==
        std::vector<float>{0, 1, 0});
  CHECK(l1_row_mask(std::vector<float>{1, 1, -3, 0, 0.5f, 0.5f}, 3, 1.0) ==
        std::vector<float>{1, 1, 1});
  CHECK(kept_count(64, 0.5) == 32);
  CHECK(kept_count(10, 0.01) == 1);  // never empty
  CHECK_THROWS_AS(kept_count(10, 0.0), std::invalid_argument);

  // 90% sparsity on random values: the kept ones are exactly those above the 90th percentile.
  std::mt19937 random(3);
  std::normal_distribution<float> normal;
  std::vector<float> values(1000);
  for (float& value : values) value = normal(random);
  std::vector<float> mask = l1_sparse_mask(values, 0.1);
  std::vector<float> magnitudes(values.size());
  std::transform(values.begin(), values.end(), magnitudes.begin(),
                 [](float v) { return std::fabs(v); });
  std::vector<float> sorted = magnitudes;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const float threshold = sorted[99];
  int kept = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    CHECK(mask[i] == (magnitudes[i] >= threshold ? 1.0f : 0.0f));
    kept += int(mask[i]);
  }
  CHECK(kept == 100);
}

TEST_CASE("pruning masks: the gradual schedule") {
  // offset 100, end 200, stride 10, final dense ratio 0.1 (sparsity 0.9).
  auto ratio = [](int64_t step) { return gradual_dense_ratio(step, 100, 200, 10, 0.1); };
  CHECK(ratio(0) == 1.0);
  CHECK(ratio(99) == 1.0);
  CHECK(ratio(100) == doctest::Approx(1.0));
  CHECK(ratio(150) == doctest::Approx(1.0 - 0.9 * (1.0 - 0.125)));
  CHECK(ratio(159) == ratio(150));  // moves on stride boundaries only
  CHECK(ratio(160) == doctest::Approx(1.0 - 0.9 * (1.0 - std::pow(0.4, 3))));
  CHECK(ratio(200) == 0.1);
  CHECK(ratio(5000) == 0.1);
  // offset == end prunes at once.
  CHECK(gradual_dense_ratio(49, 50, 50, 1, 0.3) == 1.0);
  CHECK(gradual_dense_ratio(50, 50, 50, 1, 0.3) == 0.3);
}
