// The small GPTs the inference tests serve: random ones of either layout (with grouped-query
// attention for Llama), and a GPT-2 trained for a few seconds on a fixed English text, whose
// perplexity is far below its vocabulary's (so that rounding the weights shows in it).
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/factory.h"
#include "core/generator.h"
#include "models/gpt.h"
#include "optim/adam.h"

namespace zt::testing {

inline models::GPTConfig serving_config(models::Architecture architecture,
                                        int64_t block_size = 48) {
  models::GPTConfig config;
  config.architecture = architecture;
  config.vocab_size = 29;
  config.block_size = block_size;
  config.n_layer = 2;
  config.n_head = 4;
  config.n_kv_head = architecture == models::Architecture::llama ? 2 : 0;
  config.n_embd = 32;
  config.bias = architecture == models::Architecture::gpt2;
  config.tie_word_embeddings = architecture == models::Architecture::gpt2;
  return config;
}

// Letters a..z as 1..26, space 27, '.' 28 (0 unused).
inline std::vector<int64_t> letter_tokens(const std::string& text) {
  std::vector<int64_t> tokens;
  for (char c : text) {
    if (c >= 'a' && c <= 'z') tokens.push_back(c - 'a' + 1);
    if (c == ' ') tokens.push_back(27);
    if (c == '.') tokens.push_back(28);
  }
  return tokens;
}

inline const std::string& training_text() {
  static const std::string text =
      "the quick brown fox jumps over the lazy dog. a stitch in time saves nine. the early bird "
      "catches the worm. all that glitters is not gold. the pen is mightier than the sword. "
      "actions speak louder than words. the quick brown fox jumps over the lazy dog again. "
      "birds of a feather flock together. time and tide wait for no man. ";
  return text;
}

// A GPT-2 trained by Adam on training_text() (the same weights every call: fixed seed).
inline std::shared_ptr<models::GPT> trained_gpt() {
  const std::vector<int64_t> text = letter_tokens(training_text());
  manual_seed(7);
  auto model = std::make_shared<models::GPT>(serving_config(models::Architecture::gpt2));
  optim::Adam adam(optim::single_group(model->parameters(), 1e-2));
  const int64_t batch = 4, length = 32;
  for (int64_t step = 0; step < 60; ++step) {
    std::vector<int64_t> inputs, targets;
    for (int64_t b = 0; b < batch; ++b) {
      const size_t start = size_t((step * 37 + b * 53) % int64_t(text.size() - length - 1));
      inputs.insert(inputs.end(), text.begin() + start, text.begin() + start + length);
      targets.insert(targets.end(), text.begin() + start + 1, text.begin() + start + length + 1);
    }
    Tensor logits = (*model)(from_int64(inputs, {batch, length}));
    Tensor loss =
        cross_entropy(logits.reshape({batch * length, -1}), from_int64(targets, {batch * length}));
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  return model;
}

}  // namespace zt::testing
