// Row and channel pruning with method "topk": DeepSpeed's learned row and channel scores. The
// masks against a selection loop over scores set in the test, the masked outputs and the
// scores' straight-through gradient against loops, and redundancy_clean removing the rows and
// channels the scores dropped (the scores themselves leave the cleaned model).
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "compress/compressor.h"
#include "compress/mask_scores.h"
#include "compress/redundancy_clean.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/config.h"
#include "nn/nn.h"
#include "tests/compress/compress_test_models.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::compress;

namespace {

using testing::ConvNet;

const char* kTopkRowsAndChannels = R"("compression_training": {
  "channel_pruning": {"shared_parameters": {"enabled": true, "method": "topk",
                                            "schedule_offset": 0},
    "different_groups": {"cp": {"params": {"dense_ratio": 0.5}, "modules": ["conv"],
                                "related_modules": [["fc1"]]}}},
  "row_pruning": {"shared_parameters": {"enabled": true, "method": "topk", "schedule_offset": 0},
    "different_groups": {"rp": {"params": {"dense_ratio": 0.25}, "modules": ["fc1"],
                                "related_modules": [["fc2"]]}}}})";

dist::CompressionConfig config_of(const std::string& block) {
  return testing::parse(testing::with_batch(block)).compression_training;
}

void set_values(const Tensor& parameter, const std::vector<float>& values) {
  REQUIRE(size_t(parameter.numel()) == values.size());
  std::copy(values.begin(), values.end(), parameter.data_ptr<float>());
}

// 1 for the `kept` largest scores (ties to the lower index), by a plain selection loop.
std::vector<float> reference_topk(const std::vector<float>& scores, size_t kept) {
  std::vector<float> mask(scores.size(), 0.0f);
  for (size_t round = 0; round < kept; ++round) {
    size_t best = scores.size();
    for (size_t i = 0; i < scores.size(); ++i)
      if (mask[i] == 0.0f && (best == scores.size() || scores[i] > scores[best])) best = i;
    mask[best] = 1.0f;
  }
  return mask;
}

}  // namespace

TEST_CASE("topk row pruning: masked rows and bias, the scores' gradient straight through") {
  manual_seed(21);
  auto net = std::make_shared<ConvNet>();
  const dist::CompressionConfig config = config_of(kTopkRowsAndChannels);
  CHECK(add_mask_scores(*net, config, 3) == 2);
  Tensor row_scores = own_parameter(*net->fc1, kRowScoresName);
  Tensor channel_scores = own_parameter(*net->conv, kChannelScoresName);
  REQUIRE(row_scores.defined());
  REQUIRE(channel_scores.defined());
  CHECK(row_scores.sizes() == Shape{8, 1});
  CHECK(channel_scores.sizes() == Shape{4, 1, 1, 1});
  for (double score : row_scores.to_vector()) CHECK(std::fabs(score) <= 1.0);  // fan_in 1
  const std::vector<float> rows = {0.1f, -0.4f, 0.7f, 0.2f, 0.7f, -0.9f, 0.05f, 0.3f};
  set_values(row_scores, rows);
  const std::vector<float> row_mask = reference_topk(rows, 2);  // 25% of 8: rows 2 and 4
  CHECK(row_mask == std::vector<float>{0, 0, 1, 0, 1, 0, 0, 0});
  Compressor compressor(*net, config, [] { return int64_t(0); });

  Tensor x = randn({3, 16});
  Tensor c = randn({3, 8});
  Tensor out = (*net->fc1)(x);
  sum(mul(out, c)).backward();
  const std::vector<double> xs = x.to_vector(), cs = c.to_vector(), got = out.to_vector();
  const std::vector<double> w = net->fc1->weight.to_vector(), b = net->fc1->bias.to_vector();
  const std::vector<double> score_grad = row_scores.grad().to_vector();
  const std::vector<double> weight_grad = net->fc1->weight.grad().to_vector();
  for (size_t r = 0; r < 8; ++r) {
    double expected_score_grad = 0.0;
    for (size_t n = 0; n < 3; ++n) {
      double dense = b[r];
      for (size_t j = 0; j < 16; ++j) dense += xs[n * 16 + j] * w[r * 16 + j];
      CHECK(got[n * 8 + r] == doctest::Approx(row_mask[r] * dense).epsilon(1e-5));
      expected_score_grad += cs[n * 8 + r] * dense;
    }
    // d(loss)/d(mask_r), handed to the score unchanged, kept row or not.
    CHECK(score_grad[r] == doctest::Approx(expected_score_grad).epsilon(1e-5));
    for (size_t j = 0; j < 16; ++j) {
      double expected = 0.0;
      for (size_t n = 0; n < 3; ++n) expected += cs[n * 8 + r] * xs[n * 16 + j];
      CHECK(weight_grad[r * 16 + j] == doctest::Approx(row_mask[r] * expected).epsilon(1e-5));
    }
  }
}

TEST_CASE("topk channel pruning: the scores choose the channels redundancy_clean removes") {
  manual_seed(22);
  auto net = std::make_shared<ConvNet>();
  const dist::CompressionConfig config = config_of(kTopkRowsAndChannels);
  add_mask_scores(*net, config, 4);
  const std::vector<float> channels = {0.3f, -0.2f, 0.9f, 0.1f};
  set_values(own_parameter(*net->conv, kChannelScoresName), channels);
  set_values(own_parameter(*net->fc1, kRowScoresName), {0, 1, 0, 0, 0, 0, 2, 0});
  const std::vector<float> channel_mask = reference_topk(channels, 2);  // channels 0 and 2
  Compressor compressor(*net, config, [] { return int64_t(0); });
  Tensor images = randn({2, 1, 4, 4});
  Tensor mask =
      from_values({channel_mask[0], channel_mask[1], channel_mask[2], channel_mask[3]}, {4});
  Tensor expected = conv2d(images, mul(net->conv->weight, mask.reshape({4, 1, 1, 1})),
                           mul(net->conv->bias, mask), Conv2dParams{});
  Tensor output = (*net->conv)(images);
  const std::vector<double> want = expected.to_vector(), got = output.to_vector();
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-6));

  const std::vector<ModuleCompression> state = compressor.state_at(0);
  REQUIRE(state.size() == 2);
  CHECK(state[0].row_mask == channel_mask);
  CHECK(state[1].row_mask == std::vector<float>{0, 1, 0, 0, 0, 0, 1, 0});
  // The cleaned model: 2 channels, fc1 reads their 8 features and keeps 2 rows, fc2 reads 2.
  CleanedModel cleaned = redundancy_clean(net->state_dict(), state);
  std::map<std::string, Shape> shapes;
  for (const auto& [name, tensor] : cleaned.tensors) shapes[name] = tensor.sizes();
  CHECK(shapes.at("conv.weight") == Shape{2, 1, 3, 3});
  CHECK(shapes.at("fc1.weight") == Shape{2, 8});
  CHECK(shapes.at("fc2.weight") == Shape{3, 2});
  CHECK(!shapes.contains("conv.channel_mask_scores"));
  CHECK(!shapes.contains("fc1.row_mask_scores"));
  // The dense network computes what the cleaned one does on the kept channels and rows.
  NoGradGuard no_grad;
  auto smaller =
      std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
          std::make_shared<nn::Conv2d>(1, 2, 3), std::make_shared<nn::ReLU>(),
          std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(8, 2),
          std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(2, 3)});
  NamedTensors renamed;
  for (const auto& [name, tensor] : cleaned.tensors) {
    std::string layer = name.starts_with("conv") ? "0" : name.starts_with("fc1") ? "3" : "5";
    renamed.emplace_back(layer + name.substr(name.find('.')), tensor);
  }
  smaller->load_state_dict(renamed);
  const std::vector<double> full = (*net)(images).to_vector(),
                            small = (*smaller)(images).to_vector();
  for (size_t i = 0; i < full.size(); ++i)
    CHECK(small[i] == doctest::Approx(full[i]).epsilon(1e-5));
}

TEST_CASE("topk row pruning without its scores names the key and the call") {
  auto net = std::make_shared<ConvNet>();
  CHECK_THROWS_WITH_AS(Compressor(*net, config_of(kTopkRowsAndChannels), [] { return int64_t(0); }),
                       "compression_training.row_pruning: fc1 has no learned "
                       "row_mask_scores; call compress::add_mask_scores(model, config) before "
                       "zt::initialize",
                       dist::ConfigError);
}
