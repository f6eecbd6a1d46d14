// LayerNorm and Embedding layers: their initialisation and argument checks.
#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "nn/embedding.h"
#include "nn/init.h"
#include "nn/layer_norm.h"

namespace zt::nn {

LayerNorm::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine)
    : normalized_shape_(std::move(normalized_shape)), eps_(eps) {
  if (normalized_shape_.empty() || shape_numel(normalized_shape_) <= 0 || !(eps > 0)) {
    throw std::invalid_argument(fmt::format(
        "LayerNorm: expected a non-empty positive normalized_shape and eps > 0, got {} and {}",
        shape_str(normalized_shape_), eps));
  }
  if (elementwise_affine) {
    MemoryTagGuard as_param(MemoryTag::param);
    weight = register_parameter("weight", ones(normalized_shape_));
    bias = register_parameter("bias", zeros(normalized_shape_));
  }
}

std::string LayerNorm::extra_repr() const {
  return fmt::format("{}, eps={}, elementwise_affine={}", shape_str(normalized_shape_), eps_,
                     weight.defined());
}

Tensor LayerNorm::forward(const Tensor& input) {
  return layer_norm(input, normalized_shape_, weight, bias, eps_);
}

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx)
    : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim), padding_idx_(padding_idx) {
  if (num_embeddings <= 0 || embedding_dim <= 0) {
    throw std::invalid_argument(fmt::format("Embedding: sizes must be positive, got {} x {}",
                                            num_embeddings, embedding_dim));
  }
  if (padding_idx < 0 && padding_idx != -1) padding_idx_ = padding_idx + num_embeddings;
  if (padding_idx_ >= num_embeddings || padding_idx_ < -1) {
    throw std::invalid_argument(
        fmt::format("Embedding: padding_idx {} is outside [0, {})", padding_idx, num_embeddings));
  }
  MemoryTagGuard as_param(MemoryTag::param);
  weight = empty({num_embeddings, embedding_dim});
  init::normal_(weight, 0.0, 1.0);
  if (padding_idx_ >= 0) ops::fill_(ops::select(weight, 0, padding_idx_), 0.0);
  weight = register_parameter("weight", weight);
}

std::string Embedding::extra_repr() const {
  std::string text = fmt::format("{}, {}", num_embeddings_, embedding_dim_);
  if (padding_idx_ >= 0) text += fmt::format(", padding_idx={}", padding_idx_);
  return text;
}

Tensor Embedding::forward(const Tensor& indices) {
  return embedding(weight, indices, padding_idx_);
}

}  // namespace zt::nn
