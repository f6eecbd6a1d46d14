// Generation with a KV cache: the logits of a prompt fed at once and then one token a step (and
// in uneven chunks) equal those of the full forward over the same tokens, for both layouts and
// for grouped-query attention; the context limit and the input checks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/generator.h"
#include "models/gpt.h"
#include "nn/shared_tensors.h"
#include "tests/error_of.h"
#include "tests/largest_difference.h"

using namespace zt;
using namespace zt::models;

namespace {

GPTConfig tiny_config(Architecture architecture, int64_t n_kv_head = 0) {
  GPTConfig config;
  config.architecture = architecture;
  config.vocab_size = 37;
  config.block_size = 16;
  config.n_layer = 2;
  config.n_head = 4;
  config.n_kv_head = n_kv_head;
  config.n_embd = 32;
  config.bias = architecture == Architecture::gpt2;
  return config;
}

Tensor tokens(int64_t batch, int64_t length, uint64_t seed) {
  std::vector<int64_t> values(size_t(batch * length));
  for (size_t i = 0; i < values.size(); ++i) values[i] = int64_t((i * 7 + seed * 13) % 37);
  return from_int64(values, {batch, length});
}

using zt::testing::largest_relative_difference;

// Feeds `idx` through the cache in chunks of the given lengths; the concatenated logits.
Tensor logits_through_cache(GPT& model, const Tensor& idx, const std::vector<int64_t>& chunks) {
  KVCache cache;
  std::vector<Tensor> pieces;
  int64_t start = 0;
  for (int64_t length : chunks) {
    pieces.push_back(model.forward(idx.narrow(1, start, length).contiguous(), &cache));
    start += length;
    CHECK(cache.length() == start);
  }
  return cat(pieces, 1);
}

}  // namespace

TEST_CASE("GPT logits through a KV cache equal the full forward within 1e-5 (gpt2, llama, GQA)") {
  autograd::NoGradGuard no_grad;
  for (auto [architecture, n_kv_head] :
       {std::pair{Architecture::gpt2, int64_t(0)}, std::pair{Architecture::llama, int64_t(0)},
        std::pair{Architecture::llama, int64_t(2)}}) {
    CAPTURE(architecture_name(architecture));
    CAPTURE(n_kv_head);
    manual_seed(11);
    GPT model(tiny_config(architecture, n_kv_head));
    model.eval();
    Tensor idx = tokens(2, 12, 3);
    Tensor full = model(idx);
    REQUIRE(full.sizes() == Shape{2, 12, 37});
    // Prompt of 5, then one token a step.
    std::vector<int64_t> stepwise{5};
    for (int i = 0; i < 7; ++i) stepwise.push_back(1);
    double one_a_step =
        largest_relative_difference(logits_through_cache(model, idx, stepwise), full);
    // Multi-token chunks after a cache need the bottom-right causal mask.
    double chunked =
        largest_relative_difference(logits_through_cache(model, idx, {3, 4, 1, 4}), full);
    CAPTURE(one_a_step);
    CAPTURE(chunked);
    CHECK(one_a_step < 1e-5);
    CHECK(chunked < 1e-5);
  }
}

TEST_CASE("GPT refuses a sequence longer than its context and idx that is not i64 [B, T]") {
  manual_seed(12);
  GPT model(tiny_config(Architecture::gpt2));
  std::string too_long = error_of([&] { model(tokens(1, 17, 0)); });
  CHECK(too_long.find("17 positions (0 cached + 17 new) is longer than the model's context, "
                      "block_size 16") != std::string::npos);
  KVCache cache;
  autograd::NoGradGuard no_grad;
  model.forward(tokens(1, 10, 0), &cache);
  std::string past_end = error_of([&] { model.forward(tokens(1, 7, 0), &cache); });
  CHECK(past_end.find("17 positions (10 cached + 7 new)") != std::string::npos);
  std::string wrong_dtype = error_of([&] { model(zeros({1, 4})); });
  CHECK(wrong_dtype.find("GPT: idx must be i64 token ids [batch, time], got f32 [1, 4]") == 0);
  std::string outside = error_of([&] { model(from_int64(std::vector<int64_t>{3, 37}, {1, 2})); });
  CHECK(outside == "GPT: token 37 at [0, 1] is outside the vocabulary [0, 37)");
}

TEST_CASE("GPT's parameters follow the config: GPT-2 without biases and untied, Llama tied") {
  GPTConfig plain = tiny_config(Architecture::gpt2);
  plain.bias = false;
  plain.tie_word_embeddings = false;
  GPT gpt2(plain);
  std::vector<std::string> names;
  for (auto& [name, tensor] : gpt2.named_parameters()) names.push_back(name);
  // Conv1D biases gone (LayerNorm keeps its own), the head a parameter of its own [V, C].
  CHECK(std::find(names.begin(), names.end(), "h.0.attn.c_attn.bias") == names.end());
  CHECK(std::find(names.begin(), names.end(), "h.0.ln_1.bias") != names.end());
  CHECK(names.back() == "lm_head.weight");
  CHECK(gpt2.lm_head()->weight.sizes() == Shape{37, 32});
  CHECK_FALSE(nn::same_tensor(gpt2.lm_head()->weight, gpt2.token_embedding()->weight));

  GPTConfig tied = tiny_config(Architecture::llama, 2);
  GPT llama(tied);
  CHECK(nn::same_tensor(llama.lm_head()->weight, llama.token_embedding()->weight));
  CHECK(llama.named_parameters().size() == 1 + 2 * 9 + 1);  // embedding, 9 per layer, norm
  CHECK(llama.state_dict().size() == llama.named_parameters().size() + 1);  // + lm_head.weight
  std::string bad = error_of([] {
    GPTConfig odd = tiny_config(Architecture::llama, 3);
    GPT model(odd);
  });
  CHECK(bad == "GPTConfig: n_kv_head: expected 0 or a divisor of n_head (4), got 3");
}
