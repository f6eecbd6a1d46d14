// The compression quantizers against hand-worked grids and a plain reference loop: symmetric
// and asymmetric uniform grids, groups with their own scales, ternary and binary, and
// stochastic rounding that is unbiased.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "compress/quantizer.h"

using namespace zt::compress;

namespace {

std::vector<float> quantized(std::vector<float> values, QuantizerSettings settings) {
  fake_quantize(values, settings);
  return values;
}

// The symmetric grid written out: scale 2*absmax/2^b, codes clamped to [-2^(b-1), 2^(b-1)-1].
std::vector<float> symmetric_reference(const std::vector<float>& values, int bits, size_t groups) {
  std::vector<float> out(values.size());
  const size_t size = values.size() / groups;
  for (size_t g = 0; g < groups; ++g) {
    float absmax = 0;
    for (size_t i = g * size; i < (g + 1) * size; ++i)
      absmax = std::max(absmax, std::fabs(values[i]));
    const float scale = float(2.0 * absmax / std::pow(2.0, bits));
    const double low = -std::pow(2.0, bits - 1), high = std::pow(2.0, bits - 1) - 1;
    for (size_t i = g * size; i < (g + 1) * size; ++i)
      out[i] = float(std::clamp(std::nearbyint(double(values[i]) / scale), low, high) * scale);
  }
  return out;
}

}  // namespace

TEST_CASE("quantizer: hand-worked symmetric and asymmetric 3-bit grids") {
  // absmax 1, scale 0.25: 1 -> code 4, clamped to 3.
  CHECK(quantized({-1, 0.5f, 0.25f, 1}, {.bits = 3}) == std::vector<float>{-1, 0.5f, 0.25f, 0.75f});
  // min 0, max 2: scale 0.25, codes 0..7.
  CHECK(quantized({0, 0.7f, 1.4f, 2}, {.bits = 3, .symmetric = false}) ==
        std::vector<float>{0, 0.75f, 1.5f, 1.75f});
  // min -1: the zero point is code 4, so 0 stays exactly 0.
  CHECK(quantized({-1, 0, 1}, {.bits = 3, .symmetric = false}) == std::vector<float>{-1, 0, 0.75f});
  // Each group has its own scale.
  std::vector<float> grouped = quantized({1, 0.5f, 10, 5}, {.bits = 8, .groups = 2});
  CHECK(grouped[0] == doctest::Approx(127.0 * 2.0 / 256.0));
  CHECK(grouped[2] == doctest::Approx(127.0 * 20.0 / 256.0));
  CHECK(quantized({0, 0, 0, 0}, {.bits = 4}) == std::vector<float>{0, 0, 0, 0});
}

TEST_CASE("quantizer: symmetric grids equal the reference loop at 4 and 8 bits in groups") {
  std::mt19937 random(7);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  std::vector<float> values(256);
  for (float& value : values) value = normal(random);
  for (int bits : {4, 8}) {
    for (size_t groups : {size_t(1), size_t(4)}) {
      std::vector<float> expected = symmetric_reference(values, bits, groups);
      std::vector<float> actual = quantized(values, {.bits = bits, .groups = int64_t(groups)});
      CHECK(actual == expected);
      // Few distinct values: at most 2^bits per group.
      std::vector<float> distinct(actual.begin(), actual.begin() + 256 / groups);
      std::sort(distinct.begin(), distinct.end());
      distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
      CHECK(distinct.size() <= size_t(1) << bits);
    }
  }
}

TEST_CASE("quantizer: ternary and binary (2 and 1 bits)") {
  // mean |w| 0.65, threshold 0.455: 1, -1, 0.5 kept with alpha = 2.5 / 3.
  std::vector<float> ternary = quantized({1, -1, 0.1f, 0.5f}, {.bits = 2});
  const float alpha = 2.5f / 3.0f;
  CHECK(ternary[0] == doctest::Approx(alpha));
  CHECK(ternary[1] == doctest::Approx(-alpha));
  CHECK(ternary[2] == 0.0f);
  CHECK(ternary[3] == doctest::Approx(alpha));
  CHECK(quantized({1, -3}, {.bits = 1}) == std::vector<float>{2, -2});
  CHECK_THROWS_WITH_AS(fake_quantize(ternary, {.bits = 2, .symmetric = false}),
                       doctest::Contains("symmetric only"), std::invalid_argument);
  std::vector<float> five(5, 1.0f);
  CHECK_THROWS_WITH_AS(fake_quantize(five, {.bits = 8, .groups = 2}),
                       doctest::Contains("5 values do not split into 2 equal groups"),
                       std::invalid_argument);
}

TEST_CASE("quantizer: stochastic rounding stays on the grid and is unbiased") {
  // absmax 1 at 3 bits: scale 0.25; 0.1 is 0.4 of the way from 0 to 0.25.
  double sum = 0;
  const int trials = 4000;
  for (int seed = 0; seed < trials; ++seed) {
    std::vector<float> values =
        quantized({1, 0.1f}, {.bits = 3, .stochastic = true, .seed = uint64_t(seed)});
    CHECK((values[1] == 0.0f || values[1] == 0.25f));
    sum += values[1];
  }
  CHECK(sum / trials == doctest::Approx(0.1).epsilon(0.05));
  // Nearest rounding gives 0 every time: the bias stochastic rounding removes.
  CHECK(quantized({1, 0.1f}, {.bits = 3})[1] == 0.0f);
}
