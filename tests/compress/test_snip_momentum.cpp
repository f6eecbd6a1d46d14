// sparse_pruning's snip_momentum against references written here: the geometric schedule's
// kept fractions, whole NxM blocks (Linear rows, a Conv2d's (kh, kw, in) columns), the
// sparsity reached at schedule_offset_end, and masks that keep the blocks of highest mean
// momentum score 0.9 s + |w * dL/dw|, the score recomputed in the test from each step's
// parameters and gradients; bad input is one line naming the key.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "compress/compressor.h"
#include "compress/snip_momentum.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/config.h"
#include "nn/nn.h"
#include "tests/compress/compress_test_models.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;

namespace {

class TwoLayers final : public nn::Module {
 public:
  TwoLayers() {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(2, 4, 3));
    fc = register_module("fc", std::make_shared<nn::Linear>(16, 8));
    head = register_module("head", std::make_shared<nn::Linear>(8, 3));
  }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::Linear> fc, head;

 protected:
  Tensor forward(const Tensor& images) override {  // [N, 2, 4, 4] -> [N, 4, 2, 2] -> 16
    return (*head)(relu((*fc)(relu((*conv)(images)).flatten(1))));
  }
};

dist::CompressionConfig snip_config(const std::string& shared, const std::string& modules) {
  return testing::parse(
             testing::with_batch(
                 R"("compression_training": {"sparse_pruning": {"shared_parameters": {"enabled":
                 true, "method": "snip_momentum", )" +
                 shared + R"(}, "different_groups": {"g": {"params": {"dense_ratio": 0.5},
                 "modules": )" +
                 modules + "}}}}"))
      .compression_training;
}

using testing::floats;

// Every NxM block of a [rows, columns] mask is all kept or all pruned; returns kept blocks.
int64_t kept_blocks(const std::vector<float>& mask, int64_t columns, int64_t n, int64_t m) {
  const int64_t rows = int64_t(mask.size()) / columns;
  int64_t kept = 0;
  for (int64_t r = 0; r < rows; r += n) {
    for (int64_t c = 0; c < columns; c += m) {
      const float first = mask[size_t(r * columns + c)];
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < m; ++j) CHECK(mask[size_t((r + i) * columns + c + j)] == first);
      kept += int64_t(first);
    }
  }
  return kept;
}

}  // namespace

TEST_CASE("snip_momentum: the kept fraction falls geometrically on the stride steps") {
  using compress::snip_dense_ratio;
  // Offset 10, end 50, stride 10: pruning steps 10 (prunes nothing), 20, 30, 40, 50.
  CHECK(snip_dense_ratio(9, 10, 50, 10, 0.1) == 1.0);
  CHECK(snip_dense_ratio(10, 10, 50, 10, 0.1) == 1.0);
  CHECK(snip_dense_ratio(19, 10, 50, 10, 0.1) == 1.0);
  for (int64_t k = 1; k <= 4; ++k) {
    CHECK(snip_dense_ratio(10 + 10 * k, 10, 50, 10, 0.1) ==
          doctest::Approx(std::pow(0.1, double(k) / 4)).epsilon(1e-12));
    CHECK(snip_dense_ratio(19 + 10 * k, 10, 50, 10, 0.1) ==
          snip_dense_ratio(10 + 10 * k, 10, 50, 10, 0.1));
  }
  CHECK(snip_dense_ratio(1000, 10, 50, 10, 0.1) == doctest::Approx(0.1).epsilon(1e-12));
  // An end off the stride grid: the last pruning step (40) reaches the target.
  CHECK(snip_dense_ratio(40, 10, 45, 10, 0.1) == doctest::Approx(0.1).epsilon(1e-12));
  // Start == end: one shot.
  CHECK(snip_dense_ratio(7, 7, 7, 1, 0.3) == doctest::Approx(0.3).epsilon(1e-12));
  // The pruner never goes past 98% sparsity.
  CHECK(snip_dense_ratio(7, 7, 7, 1, 0.001) == doctest::Approx(0.02).epsilon(1e-12));
}

TEST_CASE("snip_momentum: blocks keep the highest mean scores over all modules together") {
  // Module a: a 4x2 Linear weight; module b: a [2, 1, 2, 1] Conv2d (columns (kh, kw, in)).
  std::vector<float> a = {1, 9, 2, 8, 3, 7, 4, 6};  // 2x1 blocks: rows {0,1} x col, {2,3} x col
  std::vector<float> b = {5, 5, 0, 0};              // 2x1 blocks: column 0 (5, 0), column 1 (5, 0)
  std::vector<compress::SnipModule> modules = {
      {"a", {{4, 2}, false}, a},
      {"b", {{2, 1, 2, 1}, false}, b},
  };
  // Means: a (1.5, 8.5, 3.5, 6.5), b (2.5, 2.5); keep round(6 * 0.5) = 3.
  auto masks = compress::snip_block_masks(modules, {2, 1}, 0.5);
  CHECK(masks[0] == std::vector<float>{0, 1, 0, 1, 1, 1, 1, 1});
  // b's blocks score below the kept three; it still keeps one (no module past 98%).
  CHECK(masks[1] == std::vector<float>{1, 0, 1, 0});
  // The same blocks when a Conv1D stores the matrix transposed ([in, out]).
  std::vector<float> a_transposed = {1, 2, 3, 4, 9, 8, 7, 6};
  modules[0] = {"a", {{2, 4}, true}, a_transposed};
  masks = compress::snip_block_masks(modules, {2, 1}, 0.5);
  CHECK(masks[0] == std::vector<float>{0, 0, 1, 1, 1, 1, 1, 1});
  modules[0] = {"a", {{3, 2}, false}, std::span<const float>(a).first(6)};
  try {
    compress::snip_block_masks(modules, {2, 1}, 0.5);
    FAIL("expected an error");
  } catch (const dist::ConfigError& error) {
    CHECK(std::string(error.what()) ==
          "compression_training.sparse_pruning.shared_parameters.block_pattern: 2x1 blocks do "
          "not tile a's 3x2 weight matrix");
  }
}

TEST_CASE("snip_momentum: masks follow the momentum of |w * grad| and reach the sparsity") {
  manual_seed(31);
  auto model = std::make_shared<TwoLayers>();
  TwoLayers& net = *model;
  int64_t step = 0;
  compress::Compressor compressor(
      net,
      snip_config(R"("schedule_offset": 2, "schedule_offset_end": 6, "schedule_offset_stride": 2,
                   "block_pattern": "4x1", "dense_ratio": 0.25)",
                  R"(["conv", "fc"])"),
      [&] { return step; });
  std::vector<std::shared_ptr<nn::Module>> pruned = {net.conv, net.fc};
  std::vector<Tensor> weights = {net.conv->weight, net.fc->weight};
  std::vector<std::vector<float>> scores = {std::vector<float>(72, 0.0f),
                                            std::vector<float>(128, 0.0f)};
  std::vector<std::vector<float>> masks = {{}, {}};
  const std::vector<compress::WeightMatrix> matrices = {{{4, 2, 3, 3}, false}, {{8, 16}, false}};
  for (step = 0; step <= 8; ++step) {
    // The reference: at a pruning step, the masks of the scores of the steps before.
    const double ratio = compress::snip_dense_ratio(step, 2, 6, 2, 0.25);
    if (ratio < 1.0 && (step % 2 == 0 && step <= 6)) {
      masks = compress::snip_block_masks(
          {{"conv", matrices[0], scores[0]}, {"fc", matrices[1], scores[1]}}, {4, 1}, ratio);
    }
    Tensor images = randn({3, 2, 4, 4});
    Tensor loss = sum(mul(net(images), net(images)));  // two forwards in one step
    for (Tensor& weight : weights) weight.set_grad(Tensor());
    loss.backward();
    auto state = compressor.state_at(step);
    for (size_t m = 0; m < 2; ++m) {
      CHECK_MESSAGE(state[m].sparse_mask == masks[m], "step ", step, " module ", m);
      std::vector<float> w = floats(weights[m]), g = floats(weights[m].grad());
      for (size_t i = 0; i < w.size(); ++i)  // the pruner's momentum, 0.9
        scores[m][i] = 0.9f * scores[m][i] + std::fabs(w[i] * g[i]);
    }
    // SGD, so the weights move and the scores change between steps.
    for (Tensor& weight : weights) {
      std::vector<float> gradient = floats(weight.grad());
      float* values = weight.data_ptr<float>();
      for (size_t i = 0; i < gradient.size(); ++i) values[i] -= 0.01f * gradient[i];
    }
  }
  // At the end: 25% of the 4x1 blocks of both modules together, whole blocks only.
  auto state = compressor.state_at(step);
  const int64_t conv_blocks = kept_blocks(state[0].sparse_mask, 18, 4, 1);  // [4, 18] matrix
  const int64_t fc_blocks = kept_blocks(state[1].sparse_mask, 16, 4, 1);
  CHECK(conv_blocks + fc_blocks == 13);  // round(0.25 * (18 + 32)), half up
  // Pruned weights get no gradient.
  Tensor images = randn({3, 2, 4, 4});
  net.fc->weight.set_grad(Tensor());
  sum(net(images)).backward();
  std::vector<float> grad = floats(net.fc->weight.grad());
  for (size_t i = 0; i < grad.size(); ++i)
    if (state[1].sparse_mask[i] == 0.0f) CHECK(grad[i] == 0.0f);
}

TEST_CASE("snip_momentum: bad input is one line naming the key") {
  auto error_of = [](const std::string& shared) -> std::string {
    try {
      auto model = std::make_shared<TwoLayers>();
      compress::Compressor compressor(*model, snip_config(shared, R"(["fc"])"),
                                      [] { return int64_t(0); });
    } catch (const dist::ConfigError& error) {
      return error.what();
    }
    return "(no error)";
  };
  CHECK(error_of(R"("block_pattern": "3x1")") ==
        "compression_training.sparse_pruning.shared_parameters.block_pattern: 3x1 blocks do not "
        "tile fc's 8x16 weight matrix");
  CHECK(error_of(R"("block_pattern": "4x")").find("block_pattern: expected \"NxM\"") !=
        std::string::npos);
  CHECK(error_of(R"("block_pattern": "2:4")")
            .find("block_pattern: \"2:4\": N:M patterns are "
                  "not implemented yet") != std::string::npos);
  CHECK(error_of(R"("dense_ratio": 1.0)")
            .find("dense_ratio: snip_momentum needs a dense_ratio "
                  "below 1") != std::string::npos);
  CHECK(error_of(R"("method": "snip")").find("sparse_pruning.shared_parameters.method") !=
        std::string::npos);
}
