// The compressor on a small Linear/Conv2d model in a plain training loop, each technique
// against a reference computed by hand from the parameters: quantize-dequantize with the
// straight-through gradient, the bit schedule, l1 sparse masks switching on at their offset,
// row and channel masks (bias included); the parameters themselves stay untouched; errors name
// the key.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "compress/compressor.h"
#include "compress/pruning_masks.h"
#include "compress/quantizer.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/config.h"
#include "nn/nn.h"
#include "tests/compress/compress_test_models.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using zt::compress::Compressor;

namespace {

using testing::ConvNet;
using testing::floats;
using testing::max_difference;

dist::CompressionConfig compression_of(const std::string& block) {
  return testing::parse(testing::with_batch("\"compression_training\": {" + block + "}"))
      .compression_training;
}

Tensor tensor_of(const std::vector<float>& values, const Shape& shape) {
  std::vector<double> doubles(values.begin(), values.end());
  return from_values(doubles, shape);
}

}  // namespace

TEST_CASE("compressor: weight QAT forward equals the quantized weights, gradient passes through") {
  manual_seed(11);
  auto model = std::make_shared<ConvNet>();
  ConvNet& net = *model;
  int64_t step = 0;
  Compressor compressor(
      net, compression_of(R"("weight_quantization": {"shared_parameters": {"enabled": true,
          "schedule_offset": 2, "quantize_groups": 2},
          "different_groups": {"wq": {"params": {"start_bits": 4, "target_bits": 4},
                                      "modules": ["fc1"]}}})"),
      [&] { return step; });
  Tensor x = randn({5, 16});
  Tensor plain = linear(x, net.fc1->weight, net.fc1->bias);
  // Before the offset the module is untouched.
  CHECK(max_difference((*net.fc1)(x), plain) == 0.0);
  step = 2;
  std::vector<float> quantized = floats(net.fc1->weight);
  compress::fake_quantize(quantized, {.bits = 4, .groups = 2});
  Tensor expected = linear(x, tensor_of(quantized, {8, 16}), net.fc1->bias);
  Tensor output = (*net.fc1)(x);
  CHECK(max_difference(output, expected) < 1e-5);
  CHECK(max_difference(output, plain) > 1e-3);  // 4 bits really changed it
  // Straight through: dL/dW of L = sum(y * r) is r^T x, as for the unquantized weight.
  Tensor r = randn({5, 8});
  sum(mul(output, r)).backward();
  CHECK(max_difference(net.fc1->weight.grad(), matmul(r.t(), x)) < 1e-5);
  // The member is the parameter again after the forward.
  CHECK(net.fc1->weight.impl() == net.named_parameters()[2].second.impl());
}

TEST_CASE("compressor: the bit schedule drops a bit per period, the period doubling") {
  dist::CompressionGroup group;
  group.start_bits = 8;
  group.target_bits = 4;
  group.quantization_period = 10;
  const std::vector<std::pair<int64_t, int>> expected = {
      {4, 0}, {5, 8}, {14, 8}, {15, 7}, {34, 7}, {35, 6}, {75, 5}, {154, 5}, {155, 4}, {9999, 4}};
  for (auto [step, bits] : expected)
    CHECK_MESSAGE(Compressor::bits_at(group, 5, step) == bits, step);
  group.quantization_period = 0;  // DeepSpeed's examples: straight to target_bits
  CHECK(Compressor::bits_at(group, 5, 5) == 4);
}

TEST_CASE("compressor: l1 sparse pruning masks the smallest weights from its offset on") {
  manual_seed(12);
  auto model = std::make_shared<ConvNet>();
  ConvNet& net = *model;
  int64_t step = 0;
  Compressor compressor(net,
                        compression_of(R"("sparse_pruning": {"shared_parameters": {"enabled": true,
          "schedule_offset": 3, "method": "l1"},
          "different_groups": {"sp": {"params": {"dense_ratio": 0.25}, "modules": ["fc\\d"]}}})"),
                        [&] { return step; });
  Tensor x = randn({4, 16});
  step = 2;
  CHECK(max_difference((*net.fc1)(x), linear(x, net.fc1->weight, net.fc1->bias)) == 0.0);
  step = 3;
  std::vector<float> mask = compress::l1_sparse_mask(floats(net.fc1->weight), 0.25);
  Tensor masked = mul(net.fc1->weight, tensor_of(mask, {8, 16}));
  Tensor output = (*net.fc1)(x);
  CHECK(max_difference(output, linear(x, masked, net.fc1->bias)) < 1e-6);
  // The gradient of a pruned weight is 0.
  sum(output).backward();
  std::vector<double> grad = net.fc1->weight.grad().to_vector();
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i] == 0.0f) CHECK(grad[i] == 0.0);
  auto state = compressor.state_at(3);
  REQUIRE(state.size() == 2);
  CHECK(state[0].name == "fc1");
  CHECK(state[0].sparse_mask == mask);
}

TEST_CASE("compressor: channel and row pruning mask whole channels and rows with their bias") {
  manual_seed(13);
  auto model = std::make_shared<ConvNet>();
  ConvNet& net = *model;
  int64_t step = 10;
  Compressor compressor(net,
                        compression_of(R"("channel_pruning": {"shared_parameters": {"enabled": true,
          "schedule_offset": 5},
          "different_groups": {"cp": {"params": {"dense_ratio": 0.5}, "modules": ["conv"],
                                      "related_modules": [["fc1"]]}}},
         "row_pruning": {"shared_parameters": {"enabled": true, "schedule_offset": 5},
          "different_groups": {"rp": {"params": {"dense_ratio": 0.25}, "modules": ["fc1"],
                                      "related_modules": [["fc2"]]}}})"),
                        [&] { return step; });
  Tensor images = randn({2, 1, 4, 4});
  std::vector<float> channels = compress::l1_row_mask(floats(net.conv->weight), 4, 0.5);
  Tensor channel_mask = tensor_of(channels, {4});
  Tensor expected = conv2d(images, mul(net.conv->weight, channel_mask.reshape({4, 1, 1, 1})),
                           mul(net.conv->bias, channel_mask), Conv2dParams{});
  Tensor output = (*net.conv)(images);
  CHECK(max_difference(output, expected) < 1e-6);
  for (int64_t c = 0; c < 4; ++c) {
    if (channels[size_t(c)] == 0.0f) CHECK(sum(abs(output.select(1, c))).item() == 0.0);
  }
  auto state = compressor.state_at(step);
  REQUIRE(state.size() == 2);
  CHECK(state[0].row_mask == channels);
  CHECK(state[0].related_modules == std::vector<std::string>{"fc1"});
  CHECK(state[1].related_modules == std::vector<std::string>{"fc2"});
  int kept_rows = 0;
  for (float kept : state[1].row_mask) kept_rows += int(kept);
  CHECK(kept_rows == 2);
}

TEST_CASE("compressor: what the model cannot take is one line naming the key") {
  auto model = std::make_shared<ConvNet>();
  ConvNet& net = *model;
  auto error_of = [&](const std::string& block) -> std::string {
    try {
      Compressor compressor(net, compression_of(block), [] { return int64_t(0); });
    } catch (const dist::ConfigError& error) {
      return error.what();
    }
    return "(no error)";
  };
  CHECK(error_of(R"("row_pruning": {"shared_parameters": {"enabled": true},
      "different_groups": {"rp": {"params": {"dense_ratio": 0.5}, "modules": ["fc9"]}}})") ==
        "compression_training.row_pruning.different_groups.rp.modules: \"fc9\" selects no Linear, "
        "Conv1D or Conv2d module (the model has conv, fc1, fc2)");
  CHECK(error_of(R"("head_pruning": {"shared_parameters": {"enabled": true, "num_heads": 4},
      "different_groups": {"hp": {"params": {"dense_ratio": 0.5}}}})") ==
        "compression_training.head_pruning: the model (ConvNet) has no attention heads to prune");
  CHECK(error_of(R"("row_pruning": {"shared_parameters": {"enabled": true, "method": "topk"},
      "different_groups": {"rp": {"params": {"dense_ratio": 0.5}}}})") ==
        "compression_training.row_pruning: conv has no learned channel_mask_scores; call "
        "compress::add_mask_scores(model, config) before zt::initialize");
  CHECK(error_of(R"("channel_pruning": {"shared_parameters": {"enabled": true},
      "different_groups": {"cp": {"params": {"dense_ratio": 0.5}, "modules": ["conv"],
                                  "related_modules": [["fc7"]]}}})")
            .starts_with("compression_training.channel_pruning.different_groups.cp."
                         "related_modules: \"fc7\" selects no"));
  CHECK(error_of(R"("weight_quantization": {"shared_parameters": {"enabled": true,
      "quantize_groups": 5},
      "different_groups": {"wq": {"params": {"start_bits": 8, "target_bits": 8}}}})") ==
        "compression_training.weight_quantization.shared_parameters.quantize_groups: 5 does not "
        "divide the 36 weights of conv");
  // Disabled techniques select nothing and check nothing.
  CHECK(error_of(R"("row_pruning": {"shared_parameters": {"enabled": false},
      "different_groups": {"rp": {"params": {"dense_ratio": 0.5}, "modules": ["fc9"]}}})") ==
        "(no error)");
}

TEST_CASE("compressor: row pruning with schedule_offset_end cuts rows on the cubic schedule") {
  manual_seed(14);
  auto model = std::make_shared<ConvNet>();
  ConvNet& net = *model;
  int64_t step = 0;
  Compressor compressor(net,
                        compression_of(R"("row_pruning": {"shared_parameters": {"enabled": true,
          "schedule_offset": 0, "schedule_offset_end": 10, "schedule_offset_stride": 5},
          "different_groups": {"rp": {"params": {"dense_ratio": 0.25}, "modules": ["fc1"]}}})"),
                        [&] { return step; });
  // Kept fraction 1 - 0.75 (1 - (1 - t)^3): t = 0 keeps 8 rows, t = 0.5 0.34375 (3 of 8),
  // t = 1 0.25 (2); steps between stride boundaries keep the last one.
  for (auto [at, rows] :
       std::vector<std::pair<int64_t, int>>{{0, 8}, {4, 8}, {5, 3}, {9, 3}, {10, 2}, {50, 2}}) {
    step = at;
    auto state = compressor.state_at(step);
    const std::vector<float>& mask = state.at(0).row_mask;
    int kept = mask.empty() ? 8 : 0;
    for (float entry : mask) kept += int(entry);
    CHECK_MESSAGE(kept == rows, "step ", at);
    if (!mask.empty()) CHECK(mask == compress::l1_row_mask(floats(net.fc1->weight), 8, rows / 8.0));
  }
}
