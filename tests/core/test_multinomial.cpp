// multinomial: draws against an inverse-CDF reference loop over the generator's own uniforms,
// sampling frequencies against the probabilities (chi-square bounds, with and without
// replacement), the no-replacement rule, reproducibility from a seed, and bad probs.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>
#include <vector>

#include "core/generator.h"
#include "core/ops.h"
#include "core/ops/multinomial.h"

namespace {

using zt::DType;
using zt::Generator;
using zt::Shape;
using zt::Tensor;
namespace ops = zt::ops;

// Pearson's chi-square of observed counts against expected probabilities (those > 0).
double chi_square(const std::vector<double>& counts, const std::vector<double>& probabilities,
                  double total) {
  double statistic = 0.0;
  for (size_t c = 0; c < counts.size(); ++c) {
    if (probabilities[c] == 0.0) continue;
    double expected = total * probabilities[c];
    statistic += (counts[c] - expected) * (counts[c] - expected) / expected;
  }
  return statistic;
}

std::vector<double> counts_of(const std::vector<double>& draws, size_t categories) {
  std::vector<double> counts(categories, 0.0);
  for (double draw : draws) counts[size_t(draw)] += 1.0;
  return counts;
}

}  // namespace

TEST_CASE("multinomial with replacement is the inverse CDF of the generator's f64 uniforms") {
  std::vector<double> weights = {0.5, 0.0, 2.0, 1.0, 0.25, 0.0, 3.0, 1.25};
  Tensor probs = zt::from_values(weights, {2, 4}, {.dtype = DType::f32});
  Generator generator(1234);
  Generator twin(1234);
  Tensor draws = ops::multinomial(probs, 6, /*replacement=*/true, &generator);
  REQUIRE(draws.sizes() == Shape{2, 6});
  CHECK(draws.dtype() == DType::i64);
  // Draw s of row r uses the f64 uniform of element r * 6 + s: what rand() would give.
  std::vector<double> uniforms = zt::rand({2, 6}, {.dtype = DType::f64}, &twin).to_vector();
  std::vector<double> expected;
  for (int row = 0; row < 2; ++row) {
    double total = 0.0;
    for (int c = 0; c < 4; ++c) total += double(float(weights[size_t(row * 4 + c)]));
    for (int s = 0; s < 6; ++s) {
      double target = uniforms[size_t(row * 6 + s)] * total, running = 0.0;
      int pick = 0;
      for (int c = 0; c < 4; ++c) {
        running += double(float(weights[size_t(row * 4 + c)]));
        if (running > target) {
          pick = c;
          break;
        }
      }
      expected.push_back(pick);
    }
  }
  CHECK(draws.to_vector() == expected);
  CHECK(generator.offset() == 12);  // the counters it used are reserved
}

TEST_CASE("multinomial frequencies match the probabilities (chi-square, 99.99% bounds)") {
  std::vector<double> p = {0.1, 0.2, 0.3, 0.4, 0.0};
  Tensor probs = zt::from_values({1, 2, 3, 4, 0}, {5}, {.dtype = DType::f64});  // unnormalised
  Generator generator(77);
  const int64_t n = 20000;
  std::vector<double> counts =
      counts_of(ops::multinomial(probs, n, true, &generator).to_vector(), 5);
  CHECK(counts[4] == 0.0);  // a zero weight is never drawn
  // 3 degrees of freedom: P(chi2 > 21.11) = 1e-4.
  CHECK(chi_square(counts, p, double(n)) < 21.11);

  // Without replacement, over many rows of 2 draws: the first draw follows p, the second
  // follows P(j) = sum over i != j of p_i p_j / (1 - p_i), and never repeats the first.
  const int64_t rows = 20000;
  Tensor batch = ops::contiguous(ops::expand(ops::reshape(probs, {1, 5}), {rows, 5}));
  std::vector<double> pairs = ops::multinomial(batch, 2, false, &generator).to_vector();
  std::vector<double> first, second;
  for (int64_t r = 0; r < rows; ++r) {
    first.push_back(pairs[size_t(2 * r)]);
    second.push_back(pairs[size_t(2 * r + 1)]);
    CHECK_MESSAGE(pairs[size_t(2 * r)] != pairs[size_t(2 * r + 1)], "row ", r, " repeats");
  }
  std::vector<double> second_p(5, 0.0);
  for (size_t j = 0; j < 5; ++j) {
    for (size_t i = 0; i < 5; ++i) {
      if (i != j) second_p[j] += p[i] * p[j] / (1.0 - p[i]);
    }
  }
  CHECK(chi_square(counts_of(first, 5), p, double(rows)) < 21.11);
  CHECK(chi_square(counts_of(second, 5), second_p, double(rows)) < 21.11);
}

TEST_CASE("multinomial without replacement draws every positive category exactly once") {
  Tensor probs = zt::from_values({0.0, 5.0, 1e-3, 2.0, 0.0, 7.0}, {1, 6});
  Generator generator(5);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<double> draws = ops::multinomial(probs, 4, false, &generator).to_vector();
    CHECK(std::set<double>(draws.begin(), draws.end()) == std::set<double>{1, 2, 3, 5});
  }
  CHECK_THROWS_WITH_AS(ops::multinomial(probs, 5, false),
                       "multinomial: num_samples (5) without replacement exceeds a row's 4 "
                       "positive weights",
                       std::invalid_argument);
}

TEST_CASE("multinomial is reproducible from a seed and advances its generator") {
  Tensor probs = zt::from_values({1, 1, 1, 1, 1, 1, 1, 1}, {8});
  Generator a(9), b(9);
  Tensor first = ops::multinomial(probs, 8, true, &a);
  CHECK(ops::multinomial(probs, 8, true, &b).to_vector() == first.to_vector());
  CHECK(ops::multinomial(probs, 8, true, &a).to_vector() != first.to_vector());
  zt::manual_seed(9);
  CHECK(ops::multinomial(probs, 8, true).to_vector() == first.to_vector());
}

TEST_CASE("multinomial rejects bad probs and num_samples, naming them") {
  double nan = std::numeric_limits<double>::quiet_NaN();
  double inf = std::numeric_limits<double>::infinity();
  auto probs = [](std::initializer_list<double> values, Shape shape) {
    return zt::from_values(values, shape, {.dtype = DType::f64});
  };
  CHECK_THROWS_WITH_AS(ops::multinomial(probs({1, -1}, {2}), 1, true),
                       doctest::Contains("non-negative"), std::invalid_argument);
  CHECK_THROWS_AS(ops::multinomial(probs({1, nan}, {2}), 1, true), std::invalid_argument);
  CHECK_THROWS_AS(ops::multinomial(probs({1, inf}, {2}), 1, true), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::multinomial(probs({1, 1, 0, 0}, {2, 2}), 1, true),
                       doctest::Contains("sum to 0"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::multinomial(probs({1, 1}, {2}), 3, false),
                       doctest::Contains("num_samples 3 > 2 categories"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::multinomial(probs({1, 1}, {2}), 0, true),
                       doctest::Contains("num_samples must be positive"), std::invalid_argument);
  CHECK_THROWS_AS(ops::multinomial(probs({1, 1}, {1, 1, 2}), 1, true), std::invalid_argument);
  CHECK_THROWS_AS(ops::multinomial(zt::from_int64(std::vector<int64_t>{1, 2}, {2}), 1, true),
                  std::invalid_argument);
}
