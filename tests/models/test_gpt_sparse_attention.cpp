// A GPT with block-sparse attention: the dense layout gives the dense model's logits; under
// the fixed layout a one-layer model's position t does not move when a token outside its
// visible blocks changes and does when a visible one does; a KV cache (the layout as a mask)
// gives the full forward's logits; a few AdamW steps on a batch lower its loss; a block_size
// off the block grid is refused by name.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/generator.h"
#include "models/gpt.h"
#include "optim/adam.h"
#include "tests/error_of.h"

using namespace zt;
using namespace zt::models;

namespace {

GPTConfig sparse_config(Architecture architecture, SparsityMode mode, int64_t n_layer = 2) {
  GPTConfig config;
  config.architecture = architecture;
  config.vocab_size = 29;
  config.block_size = 32;
  config.n_layer = n_layer;
  config.n_head = 4;
  config.n_kv_head = architecture == Architecture::llama ? 2 : 0;
  config.n_embd = 32;
  SparsityConfig sparse;
  sparse.mode = mode;
  sparse.block = 4;
  sparse.num_local_blocks = 2;
  sparse.unidirectional = true;
  config.sparse_attention = sparse;
  return config;
}

Tensor tokens(int64_t batch, int64_t length, uint64_t seed) {
  std::vector<int64_t> values(size_t(batch * length));
  for (size_t i = 0; i < values.size(); ++i) values[i] = int64_t((i * 7 + seed * 13) % 29);
  return from_int64(values, {batch, length});
}

double max_difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

}  // namespace

TEST_CASE("GPT with the dense sparse layout gives the dense GPT's logits within 1e-5") {
  autograd::NoGradGuard no_grad;
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama}) {
    CAPTURE(architecture_name(architecture));
    GPTConfig config = sparse_config(architecture, SparsityMode::dense);
    manual_seed(3);
    GPT sparse(config);
    config.sparse_attention.reset();
    manual_seed(3);
    GPT dense(config);
    const Tensor idx = tokens(2, 32, 1);
    CHECK(max_difference(sparse(idx), dense(idx)) < 1e-5);
  }
}

TEST_CASE("GPT under the fixed layout sees exactly the layout's blocks, and its cache agrees") {
  autograd::NoGradGuard no_grad;
  manual_seed(5);
  // Windows of 2 blocks of 4 tokens; block 1 of each window is global. Position 21 (block 5,
  // window [4, 6)) sees blocks 1 and 3 (global), 4 and 5 (its window): not block 2 or 0.
  GPT model(sparse_config(Architecture::gpt2, SparsityMode::fixed, 1));
  model.eval();
  const Tensor idx = tokens(1, 32, 2);
  const Tensor logits = model(idx);
  auto with_token_changed = [&](int64_t position) {
    std::vector<int64_t> values;
    for (double value : idx.to_vector()) values.push_back(int64_t(value));
    values[size_t(position)] = (values[size_t(position)] + 5) % 29;
    return model(from_int64(values, {1, 32})).narrow(1, 21, 1);
  };
  const Tensor at_21 = logits.narrow(1, 21, 1);
  CHECK(max_difference(with_token_changed(9), at_21) == 0.0);   // block 2: hidden
  CHECK(max_difference(with_token_changed(2), at_21) == 0.0);   // block 0: hidden
  CHECK(max_difference(with_token_changed(5), at_21) > 1e-4);   // block 1: global
  CHECK(max_difference(with_token_changed(17), at_21) > 1e-4);  // block 4: its window

  // Prompt of 10 (off the block grid: the mask path), then one token a step.
  KVCache cache;
  std::vector<Tensor> pieces = {model.forward(idx.narrow(1, 0, 10).contiguous(), &cache)};
  for (int64_t t = 10; t < 32; ++t)
    pieces.push_back(model.forward(idx.narrow(1, t, 1).contiguous(), &cache));
  CHECK(max_difference(cat(pieces, 1), logits) < 1e-5);
}

TEST_CASE("GPT with sparse attention trains: AdamW steps lower the loss, gpt2 and llama") {
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama}) {
    for (SparsityMode mode : {SparsityMode::fixed, SparsityMode::bigbird}) {
      CAPTURE(architecture_name(architecture));
      CAPTURE(sparsity_mode_name(mode));
      manual_seed(7);
      GPT model(sparse_config(architecture, mode));
      optim::Adam adam(optim::single_group(model.parameters(), 1e-2));
      const Tensor idx = tokens(4, 32, 3), targets = tokens(4, 32, 4);
      std::vector<double> losses;
      for (int step = 0; step < 8; ++step) {
        adam.zero_grad();
        Tensor loss = cross_entropy(model(idx).reshape({4 * 32, 29}), targets.reshape({4 * 32}));
        loss.backward();
        adam.step();
        losses.push_back(loss.item());
      }
      CAPTURE(losses.front());
      CAPTURE(losses.back());
      CHECK(losses.back() < 0.8 * losses.front());
    }
  }
}

TEST_CASE("GPT refuses a block_size off the sparse block grid, naming both") {
  GPTConfig config = sparse_config(Architecture::gpt2, SparsityMode::fixed);
  config.block_size = 30;
  CHECK(error_of([&] { GPT model(config); }) ==
        "GPTConfig: block_size: expected a multiple of sparse_attention.block (4), got 30");
}
