// QuantizedLinear against plain double loops: weight-only equals x @ dequantized(W)^T + b, and
// W8A8 equals sum_k sa (a - za) * sw (q - zq) + b over the same codes.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/factory.h"
#include "nn/module.h"
#include "quant/activation_quantization.h"
#include "quant/quantized_linear.h"
#include "tests/largest_difference.h"

using namespace zt;
using quant::QuantizationType;

namespace {

struct LayerData {
  Tensor x, weight, bias;
};

LayerData layer_data(int64_t tokens, int64_t in, int64_t out, uint64_t seed) {
  Generator generator(seed);
  return {randn({2, tokens, in}, {}, &generator), randn({out, in}, {}, &generator),
          randn({out}, {}, &generator)};
}

using zt::testing::largest_relative_difference;

// x [rows, in] @ w [out, in]^T + b in double.
std::vector<double> plain_linear(const std::vector<double>& x, const std::vector<double>& w,
                                 const std::vector<double>& b, int64_t rows, int64_t in,
                                 int64_t out) {
  std::vector<double> y(size_t(rows * out));
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t n = 0; n < out; ++n) {
      double sum = b[size_t(n)];
      for (int64_t k = 0; k < in; ++k) sum += x[size_t(t * in + k)] * w[size_t(n * in + k)];
      y[size_t(t * out + n)] = sum;
    }
  return y;
}

}  // namespace

TEST_CASE("QuantizedLinear weight-only int8 and int4 equal x @ dequantized(W)^T + b") {
  LayerData data = layer_data(7, 70, 130, 3);  // 130 rows: three f32 panels, the last partial
  for (int bits : {8, 4})
    for (QuantizationType type : {QuantizationType::symmetric, QuantizationType::asymmetric}) {
      INFO("bits=" << bits << " type=" << int(type));
      quant::QuantizedLinear layer(data.weight, data.bias, bits, 10, type, std::nullopt);
      Tensor y = layer(data.x);
      CHECK(y.sizes() == Shape{2, 7, 130});
      std::vector<double> expected = plain_linear(
          data.x.to_vector(), quant::dequantize_weight(layer.quantized_weight()).to_vector(),
          data.bias.to_vector(), 14, 70, 130);
      CHECK(largest_relative_difference(y.to_vector(), expected) < 1e-5);
      // And near the f32 layer: the quantization error of a few percent at most.
      std::vector<double> exact = plain_linear(data.x.to_vector(), data.weight.to_vector(),
                                               data.bias.to_vector(), 14, 70, 130);
      CHECK(largest_relative_difference(y.to_vector(), exact) < (bits == 8 ? 0.02 : 0.3));
    }
}

// One token reads the codes in place (quant/quantized_gemv.h): an odd width leaves the last
// int4 byte half used; 130 rows span three tasks of rows, the last partial; with and without a
// bias.
TEST_CASE("QuantizedLinear weight-only, one token: int8 and int4 codes read in place") {
  LayerData data = layer_data(1, 71, 130, 4);
  Tensor token = data.x.select(0, 0).contiguous();  // [1, 71]
  for (int bits : {8, 4})
    for (QuantizationType type : {QuantizationType::symmetric, QuantizationType::asymmetric})
      for (bool with_bias : {true, false}) {
        INFO("bits=" << bits << " type=" << int(type) << " bias=" << with_bias);
        const Tensor bias = with_bias ? data.bias : Tensor();
        quant::QuantizedLinear layer(data.weight, bias, bits, 10, type, std::nullopt);
        Tensor y = layer(token);
        CHECK(y.sizes() == Shape{1, 130});
        std::vector<double> b = with_bias ? data.bias.to_vector() : std::vector<double>(130, 0.0);
        std::vector<double> expected = plain_linear(
            token.to_vector(), quant::dequantize_weight(layer.quantized_weight()).to_vector(), b, 1,
            71, 130);
        CHECK(largest_relative_difference(y.to_vector(), expected) < 1e-5);
      }
}

// 2 tokens take the decoding path (columns split over threads), 18 the prefill one (tokens).
TEST_CASE("QuantizedLinear W8A8 equals the integer formula over the same codes") {
  for (int64_t sequence : {1, 9}) {
    int64_t rows = 2 * sequence;
    LayerData data = layer_data(sequence, 67, 70, 5);  // k = 67: not a multiple of 4
    for (QuantizationType weight_type : {QuantizationType::symmetric, QuantizationType::asymmetric})
      for (QuantizationType token_type :
           {QuantizationType::symmetric, QuantizationType::asymmetric}) {
        INFO("weight type=" << int(weight_type) << " token type=" << int(token_type));
        quant::QuantizedLinear layer(data.weight, data.bias, 8, 7, weight_type, token_type);
        CHECK(layer.quantizes_activations());
        Tensor y = layer(data.x);
        const quant::QuantizedWeight& weight = layer.quantized_weight();
        quant::QuantizedTokens tokens =
            quant::quantize_tokens(data.x.contiguous().data_ptr<float>(), rows, 67, token_type);
        std::vector<double> scales = weight.scales.to_vector(), bias = data.bias.to_vector();
        std::vector<double> zeros = weight.zero_points.defined() ? weight.zero_points.to_vector()
                                                                 : std::vector<double>(7, 0.0);
        std::vector<double> expected(size_t(rows * 70));
        for (int64_t t = 0; t < rows; ++t)
          for (int64_t n = 0; n < 70; ++n) {
            double sum = 0;
            int64_t group = n / 10;
            for (int64_t k = 0; k < 67; ++k)
              sum += (double(tokens.codes[size_t(t * 67 + k)]) - tokens.zero_points[size_t(t)]) *
                     (quant::code_at(weight, n, k) - zeros[size_t(group)]);
            expected[size_t(t * 70 + n)] =
                tokens.scales[size_t(t)] * scales[size_t(group)] * sum + bias[size_t(n)];
          }
        CHECK(largest_relative_difference(y.to_vector(), expected) < 1e-6);
        std::vector<double> exact =
            plain_linear(data.x.to_vector(), data.weight.to_vector(), bias, rows, 67, 70);
        CHECK(largest_relative_difference(y.to_vector(), exact) < 0.03);
      }
  }
}

TEST_CASE("QuantizedLinear refuses W8A8 with 4-bit weights and inputs of the wrong width") {
  LayerData data = layer_data(2, 8, 4, 1);
  CHECK_THROWS_WITH_AS(
      quant::QuantizedLinear(data.weight, data.bias, 4, 1, QuantizationType::symmetric,
                             QuantizationType::symmetric),
      "QuantizedLinear: activation quantization (W8A8) needs 8-bit weights, got 4",
      std::invalid_argument);
  quant::QuantizedLinear layer(data.weight, data.bias, 8, 1, QuantizationType::symmetric,
                               std::nullopt);
  CHECK_THROWS_WITH_AS(layer(zeros({3, 5})),
                       "QuantizedLinear: input of shape [3, 5] needs a last dim of 8",
                       std::invalid_argument);
}

// The MLP's first projection with GELU in the W8A8 GEMM's epilogue (and after the weight-only
// product) equals GELU applied to the layer's plain output.
TEST_CASE("QuantizedLinear forward_gelu_tanh equals gelu_tanh of forward, W8A8 and weight-only") {
  for (int64_t sequence : {1, 9}) {
    LayerData data = layer_data(sequence, 67, 70, 7);
    for (bool w8a8 : {true, false}) {
      INFO("sequence=" << sequence << " w8a8=" << w8a8);
      quant::QuantizedLinear layer(
          data.weight, data.bias, 8, 7, QuantizationType::symmetric,
          w8a8 ? std::optional(QuantizationType::asymmetric) : std::nullopt);
      const std::vector<double> plain = layer(data.x).to_vector();
      std::vector<double> expected;
      for (double value : plain) {
        expected.push_back(
            0.5 * value *
            (1 + std::tanh(std::sqrt(2 / M_PI) * (value + 0.044715 * value * value * value))));
      }
      CHECK(largest_relative_difference(layer.forward_gelu_tanh(data.x).to_vector(), expected) <
            1e-6);
    }
  }
}
