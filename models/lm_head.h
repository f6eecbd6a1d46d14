// The language-model head: logits = hidden W^T, W [vocab, n_embd], no bias. Tied, W is the
// token embedding's own weight registered here a second time (one parameter in two modules,
// listed and optimized once, gathered by whichever module runs at ZeRO stage 3); untied, a
// fresh N(0, 0.02) matrix.
#pragma once

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "nn/init.h"
#include "nn/module.h"

namespace zt::models {

class LMHead final : public nn::Module {
 public:
  // The head that reads `embedding_weight` (tied).
  explicit LMHead(const Tensor& embedding_weight) {
    weight = register_parameter("weight", embedding_weight);
  }
  // A head of its own [vocab_size, n_embd] (untied).
  LMHead(int64_t vocab_size, int64_t n_embd) {
    MemoryTagGuard as_param(MemoryTag::param);
    Tensor own = empty({vocab_size, n_embd});
    nn::init::normal_(own, 0.0, 0.02);
    weight = register_parameter("weight", own);
  }
  std::string type_name() const override { return "LMHead"; }
  Tensor weight;

 protected:
  Tensor forward(const Tensor& hidden) override { return linear(hidden, weight); }
};

}  // namespace zt::models
