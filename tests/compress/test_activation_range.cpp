// Static range calibration of activation quantization: the range a module's inputs are
// quantized on is the moving average (momentum 0.95, the first observation taken whole) of
// the training inputs' min/max from schedule_offset on, written out here step by step; the
// quantized input is computed by hand from that range (DeepSpeed's formulas), and evaluation
// forwards use the range without moving it.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "compress/compressor.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/config.h"
#include "nn/nn.h"
#include "tests/compress/compress_test_models.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using zt::compress::Compressor;

namespace {

class OneLinear final : public nn::Module {
 public:
  OneLinear() { fc = register_module("fc", std::make_shared<nn::Linear>(6, 4)); }
  std::shared_ptr<nn::Linear> fc;

 protected:
  Tensor forward(const Tensor& x) override { return (*fc)(x); }
};

dist::CompressionConfig static_config(const std::string& type, int bits) {
  const std::string block = R"("activation_quantization": {"shared_parameters": {"enabled": true,
      "quantization_type": ")" +
                            type + R"(", "range_calibration": "static", "schedule_offset": 2},
      "different_groups": {"aq": {"params": {"bits": )" +
                            std::to_string(bits) + R"(}, "modules": ["fc"]}}})";
  return testing::parse(testing::with_batch("\"compression_training\": {" + block + "}"))
      .compression_training;
}

// DeepSpeed's SymQuantizer / AsymQuantizer given a min and max.
Tensor quantized_by_hand(const Tensor& x, int bits, bool symmetric, float lowest, float highest) {
  const double levels = std::pow(2.0, bits);
  std::vector<double> values = x.to_vector();
  for (double& value : values) {
    if (symmetric) {
      const double scale = 2.0 * std::max(std::fabs(lowest), std::fabs(highest)) / levels;
      value = std::clamp(std::nearbyint(value / scale), -levels / 2, levels / 2 - 1) * scale;
    } else {
      const double scale = (double(highest) - double(lowest)) / levels;
      const double zero_point = std::nearbyint(lowest / scale) * scale;
      value = std::clamp(std::nearbyint((value - zero_point) / scale), 0.0, levels - 1) * scale +
              zero_point;
    }
  }
  return from_values(values, x.sizes());
}

using testing::max_difference;

float min_of(const Tensor& x) {
  std::vector<double> v = x.to_vector();
  return float(*std::min_element(v.begin(), v.end()));
}
float max_of(const Tensor& x) {
  std::vector<double> v = x.to_vector();
  return float(*std::max_element(v.begin(), v.end()));
}

void check_static_range(const std::string& type) {
  const bool symmetric = type == "symmetric";
  manual_seed(5);
  auto model = std::make_shared<OneLinear>();
  OneLinear& net = *model;
  int64_t step = 0;
  Compressor compressor(net, static_config(type, 4), [&] { return step; });
  auto plain = [&](const Tensor& x) { return linear(x, net.fc->weight, net.fc->bias); };
  // Before schedule_offset: full precision, and nothing observed (a wide input here would
  // otherwise dominate the range below).
  for (; step < 2; ++step) {
    Tensor x = mul(randn({3, 6}), 10.0);
    CHECK(max_difference(net(x), plain(x)) == 0.0);
  }
  float lowest = 0.0f, highest = 0.0f;
  for (; step < 7; ++step) {
    Tensor x = add(mul(randn({3, 6}), 1.0 + 0.3 * double(step)), 0.2);
    if (step == 2) {
      lowest = min_of(x);
      highest = max_of(x);
    } else {
      lowest = float(0.95 * lowest + 0.05 * min_of(x));
      highest = float(0.95 * highest + 0.05 * max_of(x));
    }
    Tensor expected = plain(quantized_by_hand(x, 4, symmetric, lowest, highest));
    Tensor output = net(x);
    CHECK(max_difference(output, expected) < 1e-5);
    CHECK(max_difference(output, plain(x)) > 1e-3);  // 4 bits really changed it
  }
  // Evaluation: the range stays where training left it, whatever the inputs (values beyond it
  // are clamped to its end codes).
  net.eval();
  for (double width : {5.0, 0.1}) {
    Tensor x = mul(randn({3, 6}), width);
    CHECK(max_difference(net(x), plain(quantized_by_hand(x, 4, symmetric, lowest, highest))) <
          1e-5);
  }
  // Training again moves the range on from there.
  net.train();
  Tensor x = randn({3, 6});
  lowest = float(0.95 * lowest + 0.05 * min_of(x));
  highest = float(0.95 * highest + 0.05 * max_of(x));
  CHECK(max_difference(net(x), plain(quantized_by_hand(x, 4, symmetric, lowest, highest))) < 1e-5);
}

}  // namespace

TEST_CASE("compressor: static activation range is the moving average of training min/max") {
  SUBCASE("symmetric") {
    check_static_range("symmetric");
  }
  SUBCASE("asymmetric") {
    check_static_range("asymmetric");
  }
}

TEST_CASE("compressor: static activation range before any training forward, and 2 bits") {
  manual_seed(6);
  auto model = std::make_shared<OneLinear>();
  OneLinear& net = *model;
  int64_t step = 3;
  Compressor compressor(net, static_config("symmetric", 8), [&] { return step; });
  net.eval();  // no range yet: full precision rather than a grid of width 0
  Tensor x = randn({2, 6});
  CHECK(max_difference(net(x), linear(x, net.fc->weight, net.fc->bias)) == 0.0);
  auto other = std::make_shared<OneLinear>();
  try {
    Compressor refused(*other, static_config("symmetric", 2), [] { return int64_t(0); });
    FAIL("2-bit static activation quantization was accepted");
  } catch (const dist::ConfigError& error) {
    const std::string message = error.what();
    CHECK(message.find("activation_quantization.different_groups.aq.params.bits") !=
          std::string::npos);
    CHECK(message.find("static") != std::string::npos);
  }
}
