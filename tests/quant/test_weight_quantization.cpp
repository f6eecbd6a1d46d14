// Group-wise weight quantization against plain loops written from the definition: one scale
// (and zero point) per run of rows/groups rows; value = scale * (code - zero); codes round to
// nearest even and clamp to the grid; int4 codes pack two a byte, low nibble first.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/factory.h"
#include "quant/activation_quantization.h"
#include "quant/weight_quantization.h"

using namespace zt;
using quant::QuantizationType;

namespace {

Tensor random_weight(int64_t rows, int64_t cols, uint64_t seed) {
  Generator generator(seed);
  return randn({rows, cols}, {}, &generator);
}

struct ExpectedGroup {
  double scale;
  int zero;
};

// The grid of one group from its min and max, as the definition says.
ExpectedGroup expected_grid(const std::vector<double>& values, int64_t first, int64_t count,
                            int bits, QuantizationType type) {
  double low = 0, high = 0;
  for (int64_t i = first; i < first + count; ++i) {
    low = std::min(low, values[size_t(i)]);
    high = std::max(high, values[size_t(i)]);
  }
  int qmax = bits == 8 ? 127 : 7;
  if (type == QuantizationType::symmetric) return {std::max(-low, high) / qmax, 0};
  int qmin = -qmax - 1;
  double scale = (high - low) / (qmax - qmin);
  return {scale, int(std::lrint(qmin - low / scale))};
}

void check_round_trip(int bits, QuantizationType type, int64_t rows, int64_t cols, int64_t groups) {
  INFO("bits=" << bits << " type=" << int(type) << " groups=" << groups << " cols=" << cols);
  Tensor weight = random_weight(rows, cols, 7 + uint64_t(bits));
  std::vector<double> values = weight.to_vector();
  quant::QuantizedWeight quantized = quant::quantize_weight(weight, bits, groups, type);
  CHECK(quantized.codes.dtype() == (bits == 8 ? DType::i8 : DType::i4x2));
  CHECK(quantized.codes.nbytes() == size_t(bits == 8 ? rows * cols : rows * ((cols + 1) / 2)));
  std::vector<double> dequantized = quant::dequantize_weight(quantized).to_vector();
  std::vector<double> scales = quantized.scales.to_vector();
  int64_t group_rows = rows / groups;
  int qmax = bits == 8 ? 127 : 7, qmin = type == QuantizationType::symmetric ? -qmax : -qmax - 1;
  for (int64_t group = 0; group < groups; ++group) {
    ExpectedGroup grid =
        expected_grid(values, group * group_rows * cols, group_rows * cols, bits, type);
    CHECK(scales[size_t(group)] == doctest::Approx(grid.scale).epsilon(1e-6));
    if (type == QuantizationType::asymmetric)
      CHECK(quantized.zero_points.to_vector()[size_t(group)] == grid.zero);
    for (int64_t row = group * group_rows; row < (group + 1) * group_rows; ++row)
      for (int64_t col = 0; col < cols; ++col) {
        size_t at = size_t(row * cols + col);
        int code = quant::code_at(quantized, row, col);
        int expected_code = std::clamp(
            int(std::nearbyint(float(values[at]) / float(scales[size_t(group)]))) + grid.zero, qmin,
            qmax);
        REQUIRE(code == expected_code);
        CHECK(dequantized[at] == doctest::Approx(scales[size_t(group)] * (code - grid.zero)));
        // Inside the grid's range, the error is at most half a step.
        CHECK(std::abs(dequantized[at] - values[at]) <= 0.5 * scales[size_t(group)] * 1.0001);
      }
  }
}

}  // namespace

TEST_CASE("weight quantization: int8 and int4, symmetric and asymmetric, match the plain loops") {
  for (int bits : {8, 4})
    for (QuantizationType type : {QuantizationType::symmetric, QuantizationType::asymmetric}) {
      check_round_trip(bits, type, 12, 10, 3);
      check_round_trip(bits, type, 8, 7, 8);  // odd cols: the last byte of a row is half used
    }
}

TEST_CASE("weight quantization: int4 packs two codes a byte, low nibble first, sign-extended") {
  Tensor weight = from_values({-7, 7, 1, -1, 0}, {1, 5});
  quant::QuantizedWeight quantized =
      quant::quantize_weight(weight, 4, 1, QuantizationType::symmetric);
  const uint8_t* bytes = static_cast<const uint8_t*>(quantized.codes.raw_data());
  CHECK(bytes[0] == 0x79);  // -7 -> 0x9 low, 7 -> 0x7 high
  CHECK(bytes[1] == 0xF1);  // 1 low, -1 -> 0xF high
  CHECK(bytes[2] == 0x00);
  std::vector<int8_t> unpacked(5);
  quant::unpack_int4_rows(quantized, 0, 1, unpacked.data());
  CHECK(unpacked == std::vector<int8_t>{-7, 7, 1, -1, 0});
}

TEST_CASE(
    "weight quantization: groups that do not divide the rows and bits other than 4 or 8 are "
    "refused") {
  Tensor weight = random_weight(6, 4, 1);
  CHECK_THROWS_WITH_AS(quant::quantize_weight(weight, 8, 4, QuantizationType::symmetric),
                       "quantize_weight: q_groups 4 does not divide the weight's 6 rows",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(quant::quantize_weight(weight, 3, 1, QuantizationType::symmetric),
                       "quantize_weight: num_bits must be 4 or 8, got 3", std::invalid_argument);
}

TEST_CASE("activation quantization: per-token codes, scales and zero points match the definition") {
  Tensor x = random_weight(5, 9, 11);
  std::vector<double> values = x.to_vector();
  for (QuantizationType type : {QuantizationType::symmetric, QuantizationType::asymmetric}) {
    quant::QuantizedTokens tokens = quant::quantize_tokens(x.data_ptr<float>(), 5, 9, type);
    for (int64_t t = 0; t < 5; ++t) {
      double low = 0, high = 0;
      for (int64_t i = 0; i < 9; ++i) {
        low = std::min(low, values[size_t(t * 9 + i)]);
        high = std::max(high, values[size_t(t * 9 + i)]);
      }
      double scale =
          type == QuantizationType::symmetric ? std::max(-low, high) / 127 : (high - low) / 255;
      int zero = type == QuantizationType::symmetric ? 128 : int(std::lrint(-low / scale));
      CHECK(tokens.scales[size_t(t)] == doctest::Approx(scale).epsilon(1e-6));
      CHECK(tokens.zero_points[size_t(t)] == zero);
      int32_t sum = 0;
      for (int64_t i = 0; i < 9; ++i) {
        int code = tokens.codes[size_t(t * 9 + i)];
        sum += code;
        CHECK(std::abs(tokens.scales[size_t(t)] * (code - zero) - values[size_t(t * 9 + i)]) <=
              0.5 * scale * 1.0001);
      }
      CHECK(tokens.code_sums[size_t(t)] == sum);
    }
  }
}
