// Head pruning and topk sparse pruning, the learned-score methods: the masks against a plain
// ranking of the scores, the scores' straight-through gradients against a hand-written loop,
// and a head-pruned GPT against the smaller GPT that redundancy_clean makes of it (fewer heads:
// smaller c_attn and c_proj), which must compute the same logits.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "compress/compressor.h"
#include "compress/mask_scores.h"
#include "compress/redundancy_clean.h"
#include "core/factory.h"
#include "core/generator.h"
#include "models/gpt.h"
#include "nn/nn.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::compress;

namespace {

dist::CompressionConfig compression_of(const std::string& block) {
  return testing::parse(testing::with_batch("\"compression_training\": {" + block + "}"))
      .compression_training;
}

// 1 for the `kept` largest values (ties to the lower index), by a plain selection loop.
std::vector<double> reference_topk(const std::vector<double>& scores, size_t kept) {
  std::vector<double> mask(scores.size(), 0.0);
  for (size_t round = 0; round < kept; ++round) {
    size_t best = scores.size();
    for (size_t i = 0; i < scores.size(); ++i)
      if (mask[i] == 0.0 && (best == scores.size() || scores[i] > scores[best])) best = i;
    mask[best] = 1.0;
  }
  return mask;
}

double max_difference(const std::vector<double>& x, const std::vector<double>& y) {
  REQUIRE(x.size() == y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(x[i] - y[i]));
  return worst;
}

models::GPTConfig tiny_gpt(int64_t layers) {
  models::GPTConfig config;
  config.vocab_size = 32;
  config.block_size = 8;
  config.n_layer = layers;
  config.n_head = 4;
  config.n_embd = 16;
  return config;
}

Tensor tokens(int64_t batch, int64_t length, uint64_t seed) {
  Generator generator(seed);
  const std::vector<double> uniform = rand({batch, length}, {}, &generator).to_vector();
  std::vector<int64_t> ids;
  for (double value : uniform) ids.push_back(std::min<int64_t>(31, int64_t(value * 32)));
  return from_int64(ids, {batch, length});
}

struct MaskedOutputs {
  std::vector<double> dense, masked;
  std::vector<ModuleCompression> state;  // the compressor's at step 0
};
// The model's outputs on `idx` without a compressor and under one whose masks hold from step 0;
// the compressor is gone afterwards, as when the cleaned model is built from its state.
MaskedOutputs outputs_before_and_under_the_masks(models::GPT& model,
                                                 const dist::CompressionConfig& config,
                                                 const Tensor& idx) {
  MaskedOutputs outputs;
  outputs.dense = model(idx).to_vector();
  Compressor compressor(model, config, [] { return int64_t(0); });
  outputs.masked = model(idx).to_vector();
  outputs.state = compressor.state_at(0);
  return outputs;
}

const char* kHeadPruning = R"("head_pruning": {
    "shared_parameters": {"enabled": true, "num_heads": 4, "schedule_offset": 0},
    "different_groups": {"hp": {"params": {"dense_ratio": 0.5}, "modules": ["attn.c_proj"],
                                "related_modules": [["attn.c_attn"]]}}})";

}  // namespace

TEST_CASE("topk sparse pruning: the mask ranks the scores, their gradient passes straight") {
  manual_seed(7);
  auto model = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{std::make_shared<nn::Linear>(6, 4)});
  const dist::CompressionConfig config = compression_of(R"("sparse_pruning": {
      "shared_parameters": {"enabled": true, "method": "topk", "schedule_offset": 0},
      "different_groups": {"sp": {"params": {"dense_ratio": 0.25}}}})");
  CHECK(add_mask_scores(*model, config, 3) == 1);
  Compressor compressor(*model, config, [] { return int64_t(0); });
  auto& linear = dynamic_cast<nn::Linear&>(*model->named_children()[0].second);
  const Tensor scores = own_parameter(linear, kSparseScoresName);
  REQUIRE(scores.defined());
  const std::vector<double> mask = reference_topk(scores.to_vector(), 6);  // 25% of 24
  Generator generator(11);
  const Tensor x = randn({5, 6}, {}, &generator), g = randn({5, 4}, {}, &generator);
  Tensor y = (*model)(x);
  // y[n, o] = b[o] + sum_i x[n, i] W[o, i] M[o, i]; loss = sum y * g.
  const std::vector<double> xs = x.to_vector(), gs = g.to_vector(), w = linear.weight.to_vector(),
                            b = linear.bias.to_vector(), ys = y.to_vector();
  std::vector<double> expected(20), grad_effective(24, 0.0);
  for (int n = 0; n < 5; ++n)
    for (int o = 0; o < 4; ++o) {
      double sum = b[size_t(o)];
      for (int i = 0; i < 6; ++i) {
        sum += xs[size_t(n * 6 + i)] * w[size_t(o * 6 + i)] * mask[size_t(o * 6 + i)];
        grad_effective[size_t(o * 6 + i)] += gs[size_t(n * 4 + o)] * xs[size_t(n * 6 + i)];
      }
      expected[size_t(n * 4 + o)] = sum;
    }
  CHECK(max_difference(ys, expected) < 1e-5);
  sum(mul(y, g)).backward();
  std::vector<double> weight_grad(24), score_grad(24);
  for (size_t i = 0; i < 24; ++i) {
    weight_grad[i] = grad_effective[i] * mask[i];
    score_grad[i] = grad_effective[i] * w[i];  // d(W * M)/dM = W, passed straight to the scores
  }
  CHECK(max_difference(linear.weight.grad().to_vector(), weight_grad) < 1e-5);
  CHECK(max_difference(scores.grad().to_vector(), score_grad) < 1e-5);
  const std::vector<ModuleCompression> state = compressor.state_at(0);
  REQUIRE(state.size() == 1);
  CHECK(std::vector<double>(state[0].sparse_mask.begin(), state[0].sparse_mask.end()) == mask);
}

TEST_CASE("head pruning: the masked GPT equals the cleaned GPT with fewer heads") {
  manual_seed(5);
  auto shared_model = std::make_shared<models::GPT>(tiny_gpt(2));  // modules need shared owners
  models::GPT& model = *shared_model;
  const dist::CompressionConfig config = compression_of(kHeadPruning);
  CHECK(add_mask_scores(model, config, 9) == 2);
  const Tensor idx = tokens(2, 8, 17);
  const auto [dense, masked, state] = outputs_before_and_under_the_masks(model, config, idx);
  CHECK(max_difference(masked, dense) > 1e-3);  // the mask changes the model
  REQUIRE(state.size() == 2);
  for (const ModuleCompression& module : state) {
    std::vector<double> scores;
    for (const auto& [name, tensor] : model.named_parameters())
      if (name == module.name + "." + kHeadScoresName) scores = tensor.to_vector();
    CHECK(std::vector<double>(module.head_mask.begin(), module.head_mask.end()) ==
          reference_topk(scores, 2));
    CHECK(module.related_types == std::vector<std::string>{"Conv1D"});
  }
  const CleanedModel cleaned = redundancy_clean(model.state_dict(), state);
  models::GPTConfig smaller_config = tiny_gpt(2);
  smaller_config.layer_heads = {2, 2};
  auto smaller_model = std::make_shared<models::GPT>(smaller_config);
  models::GPT& smaller = *smaller_model;
  smaller.load_state_dict(cleaned.tensors);  // strict: the scores are gone, the shapes fit
  for (const auto& [name, tensor] : cleaned.tensors) {
    if (name.ends_with("attn.c_attn.weight")) CHECK(tensor.sizes() == Shape{16, 24});
    if (name.ends_with("attn.c_attn.bias")) CHECK(tensor.sizes() == Shape{24});
    if (name.ends_with("attn.c_proj.weight")) CHECK(tensor.sizes() == Shape{8, 16});
  }
  CHECK(max_difference(smaller(idx).to_vector(), masked) < 1e-5);
}

TEST_CASE("head pruning: a kept head's score gradient is the sum of weight times gradient") {
  manual_seed(6);
  auto shared_model = std::make_shared<models::GPT>(tiny_gpt(1));
  models::GPT& model = *shared_model;
  const dist::CompressionConfig config = compression_of(kHeadPruning);
  add_mask_scores(model, config, 4);
  Compressor compressor(model, config, [] { return int64_t(0); });
  const Tensor logits = model(tokens(2, 8, 3));
  sum(mul(logits, logits)).backward();
  const std::vector<ModuleCompression> state = compressor.state_at(0);
  Tensor weight, scores;
  for (const auto& [name, tensor] : model.named_parameters()) {
    if (name == "h.0.attn.c_proj.weight") weight = tensor;
    if (name == "h.0.attn.c_proj.head_pruning_scores") scores = tensor;
  }
  // c_proj's weight is [in 16, out 16]: head h owns input rows 4h..4h+3. A kept head's mask is
  // 1, so the weight's gradient is the masked weight's, and the score's is sum(W * dW).
  const std::vector<double> w = weight.to_vector(), dw = weight.grad().to_vector(),
                            dscores = scores.grad().to_vector();
  int kept = 0;
  for (size_t head = 0; head < 4; ++head) {
    double expected = 0.0, pruned_gradient = 0.0;
    for (size_t i = head * 64; i < (head + 1) * 64; ++i) {
      expected += w[i] * dw[i];
      pruned_gradient += std::fabs(dw[i]);
    }
    if (state[0].head_mask[head] == 1.0f) {
      ++kept;
      CHECK(dscores[head] == doctest::Approx(expected).epsilon(1e-4));
    } else {
      CHECK(pruned_gradient == 0.0);  // a pruned head's weights get no gradient
      CHECK(dscores[head] != 0.0);    // but its score does: it can come back
    }
  }
  CHECK(kept == 2);
}

TEST_CASE("head pruning: a masked Llama with grouped-query attention equals the cleaned one") {
  manual_seed(8);
  models::GPTConfig llama = tiny_gpt(2);
  llama.architecture = models::Architecture::llama;
  llama.n_kv_head = 2;  // 4 query heads in 2 groups of 2, each group one key/value head
  llama.bias = false;
  auto shared_model = std::make_shared<models::GPT>(llama);
  models::GPT& model = *shared_model;
  const dist::CompressionConfig config = compression_of(R"("head_pruning": {
      "shared_parameters": {"enabled": true, "num_heads": 2, "schedule_offset": 0},
      "different_groups": {"hp": {"params": {"dense_ratio": 0.5}, "modules": ["o_proj"],
          "related_modules": [["q_proj", "k_proj", "v_proj"]]}}})");
  CHECK(add_mask_scores(model, config, 3) == 2);
  const Tensor idx = tokens(2, 8, 19);
  const auto [dense, masked, state] = outputs_before_and_under_the_masks(model, config, idx);
  CHECK(max_difference(masked, dense) > 1e-3);
  REQUIRE(state.size() == 2);
  CHECK(state[0].head_mask.size() == 2);
  const CleanedModel cleaned = redundancy_clean(model.state_dict(), state);
  models::GPTConfig smaller_config = llama;
  smaller_config.layer_heads = {2, 2};  // one group of 2 query heads and 1 key/value head
  auto smaller_model = std::make_shared<models::GPT>(smaller_config);
  smaller_model->load_state_dict(cleaned.tensors);
  for (const auto& [name, tensor] : cleaned.tensors) {
    if (name.ends_with("q_proj.weight")) CHECK(tensor.sizes() == Shape{8, 16});
    if (name.ends_with("k_proj.weight")) CHECK(tensor.sizes() == Shape{4, 16});
    if (name.ends_with("v_proj.weight")) CHECK(tensor.sizes() == Shape{4, 16});
    if (name.ends_with("o_proj.weight")) CHECK(tensor.sizes() == Shape{16, 8});
  }
  CHECK(max_difference((*smaller_model)(idx).to_vector(), masked) < 1e-5);

  // One query head alone cannot leave its group: num_heads must count the groups.
  const dist::CompressionConfig per_head = compression_of(R"("head_pruning": {
      "shared_parameters": {"enabled": true, "num_heads": 4, "schedule_offset": 0},
      "different_groups": {"hp": {"params": {"dense_ratio": 0.5}, "modules": ["o_proj"]}}})");
  auto other = std::make_shared<models::GPT>(llama);
  add_mask_scores(*other, per_head, 3);
  try {
    Compressor compressor(*other, per_head, [] { return int64_t(0); });
    FAIL("expected an error");
  } catch (const dist::ConfigError& error) {
    CHECK(std::string(error.what()) ==
          "compression_training.head_pruning.shared_parameters.num_heads: "
          "model.layers.0.self_attn has 2 key/value heads of 2 query heads each; Llama's heads "
          "are pruned by whole groups, so num_heads must be 2, got 4");
  }
}
