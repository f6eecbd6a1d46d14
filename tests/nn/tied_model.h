// A language model whose output layer is its input embedding (GPT's lm_head tied to wte),
// small enough for finite differences: logits = tanh(E[tokens] W^T + b) E^T, vocabulary 10,
// width 8. Three ways the head reads E, as models do it: a head module that registers E as its
// own parameter (one Parameter in two modules), or the root's forward reading the embedding's
// weight, declared with register_external_parameter or not.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/factory.h"
#include "core/generator.h"
#include "nn/nn.h"

namespace zt::testing {

constexpr int64_t kTiedVocab = 10;
constexpr int64_t kTiedWidth = 8;
constexpr int64_t kTiedBatch = 24;  // tokens per global step, divisible by 1, 2, 4 and 8 ranks

enum class Tying { shared_parameter, external_declared, external_undeclared };

inline const char* tying_name(Tying tying) {
  switch (tying) {
    case Tying::shared_parameter:
      return "shared parameter";
    case Tying::external_declared:
      return "external parameter, declared";
    case Tying::external_undeclared:
      return "external parameter, undeclared";
  }
  return "?";
}

// Registers the embedding's weight as its own parameter: one Parameter, two modules.
class TiedHead final : public nn::Module {
 public:
  explicit TiedHead(const Tensor& embedding_weight) {
    weight = register_parameter("weight", embedding_weight);
  }
  std::string type_name() const override { return "TiedHead"; }
  Tensor weight;

 protected:
  Tensor forward(const Tensor& hidden) override { return zt::matmul(hidden, weight.t()); }
};

class TiedLM final : public nn::Module {
 public:
  explicit TiedLM(Tying tying) {
    wte = register_module("wte", std::make_shared<nn::Embedding>(kTiedVocab, kTiedWidth));
    hidden = register_module("hidden", std::make_shared<nn::Linear>(kTiedWidth, kTiedWidth));
    if (tying == Tying::shared_parameter)
      head = register_module("head", std::make_shared<TiedHead>(wte->weight));
    if (tying == Tying::external_declared) nn::register_external_parameter(*this, wte->weight);
  }
  std::string type_name() const override { return "TiedLM"; }
  std::shared_ptr<nn::Embedding> wte;
  std::shared_ptr<nn::Linear> hidden;
  std::shared_ptr<TiedHead> head;  // null unless the head is a module of its own

 protected:
  Tensor forward(const Tensor& tokens) override {
    Tensor h = zt::tanh((*hidden)((*wte)(tokens)));
    return head ? (*head)(h) : zt::matmul(h, wte->weight.t());
  }
};

inline std::shared_ptr<TiedLM> make_tied_lm(Tying tying, uint64_t seed = 4321) {
  manual_seed(seed);
  return std::make_shared<TiedLM>(tying);
}

// The tokens and next-token targets of global step `step`, the same on every rank.
struct TokenBatch {
  Tensor tokens, targets;
};
inline TokenBatch token_batch(int step) {
  std::vector<int64_t> tokens(kTiedBatch), targets(kTiedBatch);
  for (int64_t i = 0; i < kTiedBatch; ++i) {
    tokens[size_t(i)] = (i * 7 + step * 3) % kTiedVocab;
    targets[size_t(i)] = (tokens[size_t(i)] * 3 + 1 + i % 2) % kTiedVocab;
  }
  return {from_int64(tokens, {kTiedBatch}), from_int64(targets, {kTiedBatch})};
}

}  // namespace zt::testing
