// Embedding: a lookup table [num_embeddings, embedding_dim], N(0, 1) initialised, with the
// padding row zeroed and excluded from gradients.
#pragma once

#include "nn/module.h"

namespace zt::nn {

class Embedding final : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx = -1);
  std::string type_name() const override { return "Embedding"; }
  std::string extra_repr() const override;
  Tensor weight;

 protected:
  Tensor forward(const Tensor& indices) override;

 private:
  int64_t num_embeddings_, embedding_dim_, padding_idx_;
};

}  // namespace zt::nn
