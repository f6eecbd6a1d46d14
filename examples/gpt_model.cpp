// docs/models.md's example: a tiny byte-level GPT learns one sentence with plain autograd and
// Adam, then writes it back greedily through its KV cache (one token a step). Exits 1 unless
// the generated text is the sentence and the cached logits equal the full forward's.
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "models/gpt.h"
#include "optim/adam.h"

namespace {

zt::Tensor bytes_of(const std::string& text) {
  std::vector<int64_t> ids(text.begin(), text.end());
  return zt::from_int64(ids, {1, int64_t(ids.size())});
}

}  // namespace

int main() {
  const std::string sentence = "the quick brown fox jumps over the lazy dog.";
  zt::manual_seed(0);
  zt::models::GPTConfig config;  // gpt2 layout, vocabulary 256: one token per byte
  config.block_size = 64;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 32;
  zt::models::GPT model(config);

  // Next-byte prediction over the sentence: inputs are bytes 0..n-2, targets bytes 1..n-1.
  zt::Tensor tokens = bytes_of(sentence);
  const int64_t n = tokens.size(1);
  zt::Tensor inputs = tokens.narrow(1, 0, n - 1), targets = tokens.narrow(1, 1, n - 1);
  zt::optim::Adam adam(zt::optim::single_group(model.parameters(), 0.01));
  for (int step = 0; step < 150; ++step) {
    zt::Tensor logits = model(inputs);  // [1, n - 1, 256]
    zt::Tensor loss = zt::cross_entropy(logits.reshape({-1, 256}), targets.reshape({-1}));
    adam.zero_grad();
    loss.backward();
    adam.step();
  }

  // Greedy generation: the prompt once, then one new byte a step through the cache.
  model.eval();
  zt::NoGradGuard no_grad;
  zt::models::KVCache cache;
  std::string text = "the";
  zt::Tensor logits = model.forward(bytes_of(text), &cache);
  while (int64_t(text.size()) < n) {
    int64_t next = int64_t(zt::argmax(logits.select(1, logits.size(1) - 1), -1).item());
    text.push_back(char(next));
    logits = model.forward(zt::from_int64(std::vector<int64_t>{next}, {1, 1}), &cache);
  }
  fmt::print("generated: {}\n", text);

  // The cache only saves work: the full forward over the same bytes gives the same logits.
  zt::Tensor full = model(bytes_of(text));
  zt::Tensor last = full.select(1, n - 1);
  double cache_error = zt::amax(zt::abs(last - logits.select(1, 0))).item();
  fmt::print("KV cache vs full forward: largest difference {:.1e}\n", cache_error);
  return text == sentence && cache_error < 1e-4 ? 0 : 1;
}
