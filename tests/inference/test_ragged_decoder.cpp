// A ragged step (sequences of different lengths in one batch, prompts and single tokens mixed)
// gives each sequence the logits that the model's own full forward gives its tokens.
#include <doctest/doctest.h>

#include <vector>

#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "inference/ragged_decoder.h"
#include "quant/quantize_model.h"
#include "tests/inference/inference_fixture.h"

using namespace zt;
using namespace zt::inference;

namespace {

// The full forward's logits at the last position of `tokens`.
std::vector<double> full_forward_last(models::GPT& model, const std::vector<int64_t>& tokens) {
  NoGradGuard no_grad;
  Tensor logits = model(from_int64(tokens, {1, int64_t(tokens.size())}));
  return logits.select(1, logits.size(1) - 1).to_vector();
}

void check_ragged_steps(models::Architecture architecture, bool w8a8 = false) {
  manual_seed(3);
  auto shared = std::make_shared<models::GPT>(testing::serving_config(architecture));
  models::GPT& model = *shared;
  model.eval();
  if (w8a8) {
    // The ragged step fuses GPT-2's GELU into the W8A8 c_fc; the model's own forward does not.
    quant::QuantizationConfig quantization;
    quantization.activation.enabled = true;
    quant::quantize_linear_layers(model, quantization);
  }
  RaggedDecoder decoder(model);
  // W8A8: a token's codes may round the other way when the attention before them sums in
  // another order, which moves its logits by about a code's share.
  const double tolerance = w8a8 ? 1e-3 : 1e-5;
  const models::GPTConfig& config = model.config();
  PagedKVCache cache({.layers = config.n_layer,
                      .kv_heads = config.resolved_n_kv_head(),
                      .head_dim = config.head_dim(),
                      .block_positions = 4,
                      .blocks = 32},
                     DType::f32, Device::cpu());
  std::vector<std::vector<int64_t>> sequences = {{3, 9, 1, 4, 1}, {7}, {2, 6, 5, 3, 5, 8, 9, 7, 9}};
  std::vector<int64_t> ids;
  for (size_t s = 0; s < sequences.size(); ++s) ids.push_back(cache.add_sequence());
  // Step 0: the three prompts at once; then one token each, a fourth sequence joining at step 2.
  std::vector<RaggedSequence> batch;
  for (size_t s = 0; s < sequences.size(); ++s) batch.push_back({ids[s], sequences[s]});
  for (int step = 0; step < 5; ++step) {
    Tensor logits = decoder.step(batch, cache);
    REQUIRE(logits.size(0) == int64_t(batch.size()));
    for (size_t s = 0; s < batch.size(); ++s) {
      std::vector<double> expected = full_forward_last(model, sequences[s]);
      std::vector<double> got = logits.select(0, int64_t(s)).to_vector();
      double worst = 0.0;
      for (size_t i = 0; i < got.size(); ++i)
        worst = std::max(worst, std::abs(got[i] - expected[i]));
      CHECK(worst < tolerance);
    }
    batch.clear();
    for (size_t s = 0; s < sequences.size(); ++s) {
      const int64_t token = (step * 5 + int64_t(s) * 3) % 27 + 1;
      sequences[s].push_back(token);
      batch.push_back({ids[s], {token}});
    }
    if (step == 1) {
      sequences.push_back({4, 4, 2});
      ids.push_back(cache.add_sequence());
      batch.push_back({ids.back(), sequences.back()});
    }
  }
}

}  // namespace

TEST_CASE("ragged steps give every sequence the full forward's logits within 1e-5 (gpt2)") {
  check_ragged_steps(models::Architecture::gpt2);
}

TEST_CASE("ragged steps give every sequence the full forward's logits within 1e-5 (llama, GQA)") {
  check_ragged_steps(models::Architecture::llama);
}

TEST_CASE("ragged steps of a W8A8 GPT-2 (GELU fused into c_fc) give its full forward's logits") {
  check_ragged_steps(models::Architecture::gpt2, true);
}
