// MultiheadAttention: PyTorch's initialisation (Xavier-uniform input projections, zero
// biases), its layouts and masks, and the two ways of attending (fused without weights,
// explicit scores with them).
#include "nn/multihead_attention.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/masking.h"
#include "nn/init.h"

namespace zt::nn {

namespace {

Tensor xavier_uniform(int64_t rows, int64_t cols) {
  Tensor weight = empty({rows, cols});
  const double bound = std::sqrt(6.0 / double(rows + cols));
  init::uniform_(weight, -bound, bound);
  return weight;
}

// A PyTorch mask as scores to add: u8 (bool) true -> -inf, 0 elsewhere; a float mask as is.
Tensor additive_mask(const Tensor& mask, const Tensor& like) {
  if (mask.dtype() != DType::u8) return mask.to(like.dtype());
  Tensor zero = zeros(mask.sizes(), options_of(like));
  return ops::masked_fill(zero, mask, -std::numeric_limits<double>::infinity());
}

std::string shape_or_none(const Tensor& tensor) {
  return tensor.defined() ? shape_str(tensor.sizes()) : "None";
}

// The masks as one additive bias broadcasting to [N, H, L, S] scores (undefined when there is
// none); `causal` adds the causal rule when no attn_mask stands for it.
Tensor attention_bias(const Tensor& attn_mask, const Tensor& padding, const Tensor& q,
                      const Tensor& k, bool causal) {
  const int64_t N = q.size(0), H = q.size(1), L = q.size(2), S = k.size(2);
  const bool bad_attn_mask = attn_mask.defined() && attn_mask.sizes() != Shape{L, S} &&
                             attn_mask.sizes() != Shape{N * H, L, S};
  const bool bad_padding = padding.defined() && padding.numel() != N * S;
  if (bad_attn_mask || bad_padding) {
    throw std::invalid_argument(fmt::format(
        "MultiheadAttention: expected attn_mask [L, S] = [{}, {}] or [N * num_heads, L, S] and "
        "key_padding_mask [N, S] = [{}, {}], got {} and {}",
        L, S, N, S, shape_or_none(attn_mask), shape_or_none(padding)));
  }
  Tensor bias;
  if (attn_mask.defined()) {
    bias = additive_mask(attn_mask, q);
    if (attn_mask.dim() == 3) bias = bias.view({N, H, L, S});
  } else if (causal) {
    bias = additive_mask(ops::triu(ones({L, S}, options_of(q).with_dtype(DType::u8)), 1), q);
  }
  if (padding.defined()) {
    Tensor padding_bias = additive_mask(padding, q).view({N, 1, 1, S});
    bias = bias.defined() ? bias + padding_bias : padding_bias;
  }
  return bias;
}

}  // namespace

MultiheadAttention::MultiheadAttention(int64_t embed_dim, int64_t num_heads, double dropout,
                                       bool bias, int64_t kdim, int64_t vdim, bool batch_first)
    : embed_dim_(embed_dim),
      num_heads_(num_heads),
      kdim_(kdim > 0 ? kdim : embed_dim),
      vdim_(vdim > 0 ? vdim : embed_dim),
      dropout_(dropout),
      batch_first_(batch_first) {
  if (embed_dim <= 0 || num_heads <= 0 || embed_dim % num_heads != 0 || kdim < 0 || vdim < 0) {
    throw std::invalid_argument(fmt::format(
        "MultiheadAttention: expected embed_dim a positive multiple of num_heads and kdim, vdim "
        ">= 0, got embed_dim={}, num_heads={}, kdim={}, vdim={}",
        embed_dim, num_heads, kdim, vdim));
  }
  if (!(dropout >= 0.0 && dropout < 1.0)) {
    throw std::invalid_argument(
        fmt::format("MultiheadAttention: dropout must be in [0, 1), got {}", dropout));
  }
  MemoryTagGuard as_param(MemoryTag::param);
  if (kdim_ == embed_dim && vdim_ == embed_dim) {
    in_proj_weight = register_parameter("in_proj_weight", xavier_uniform(3 * embed_dim, embed_dim));
  } else {
    q_proj_weight = register_parameter("q_proj_weight", xavier_uniform(embed_dim, embed_dim));
    k_proj_weight = register_parameter("k_proj_weight", xavier_uniform(embed_dim, kdim_));
    v_proj_weight = register_parameter("v_proj_weight", xavier_uniform(embed_dim, vdim_));
  }
  if (bias) in_proj_bias = register_parameter("in_proj_bias", zeros({3 * embed_dim}));
  out_proj = register_module("out_proj", std::make_shared<Linear>(embed_dim, embed_dim, bias));
  if (bias) init::constant_(out_proj->bias, 0.0);
}

std::string MultiheadAttention::extra_repr() const {
  return fmt::format("embed_dim={}, num_heads={}, kdim={}, vdim={}, dropout={}, batch_first={}",
                     embed_dim_, num_heads_, kdim_, vdim_, dropout_, batch_first_);
}

std::pair<Tensor, Tensor> MultiheadAttention::forward(const Tensor& query, const Tensor& key,
                                                      const Tensor& value,
                                                      const Tensor& key_padding_mask,
                                                      bool need_weights, const Tensor& attn_mask,
                                                      bool average_attn_weights, bool is_causal) {
  // The flags hold for this call only, also when a hook or forward throws.
  struct Restore {
    CallFlags& flags;
    CallFlags saved;
    ~Restore() { flags = saved; }
  } restore{flags_, flags_};
  flags_ = {need_weights, average_attn_weights, is_causal};
  TensorList outputs = (*this)(TensorList{query, key, value, key_padding_mask, attn_mask});
  return {outputs.at(0), outputs.at(1)};
}

// q, k, v [N, L or S, E] from the inputs in batch-first layout.
std::pair<Tensor, Tensor> MultiheadAttention::project(const Tensor& query, const Tensor& key,
                                                      const Tensor& value, Tensor& q) const {
  const int64_t E = embed_dim_;
  auto bias_part = [&](int64_t index) {
    return in_proj_bias.defined() ? in_proj_bias.narrow(0, index * E, E) : Tensor();
  };
  auto weight_part = [&](int64_t index, const Tensor& separate) {
    return in_proj_weight.defined() ? in_proj_weight.narrow(0, index * E, E) : separate;
  };
  q = linear(query, weight_part(0, q_proj_weight), bias_part(0));
  return {linear(key, weight_part(1, k_proj_weight), bias_part(1)),
          linear(value, weight_part(2, v_proj_weight), bias_part(2))};
}

TensorList MultiheadAttention::forward_many(const TensorList& inputs) {
  if (inputs.size() < 3 || inputs.size() > 5 || !inputs[0].defined() || !inputs[1].defined() ||
      !inputs[2].defined()) {
    throw std::invalid_argument(
        fmt::format("MultiheadAttention: takes (query, key, value[, key_padding_mask[, "
                    "attn_mask]]), got {} inputs",
                    inputs.size()));
  }
  const Tensor none;
  const Tensor& padding = inputs.size() > 3 ? inputs[3] : none;
  const Tensor& attn_mask = inputs.size() > 4 ? inputs[4] : none;
  const bool unbatched = inputs[0].dim() == 2;
  // Batch-first [N, L, E] views of the three inputs.
  auto batch_first = [&](const Tensor& x) {
    if (unbatched) return x.unsqueeze(0);
    return batch_first_ ? x : x.transpose(0, 1);
  };
  const Tensor query = batch_first(inputs[0]), key = batch_first(inputs[1]),
               value = batch_first(inputs[2]);
  const int64_t rank = unbatched ? 2 : 3;
  if (inputs[1].dim() != rank || inputs[2].dim() != rank || query.size(-1) != embed_dim_ ||
      key.size(-1) != kdim_ || value.size(-1) != vdim_ || key.size(1) != value.size(1) ||
      key.size(0) != query.size(0) || value.size(0) != query.size(0)) {
    throw std::invalid_argument(fmt::format(
        "MultiheadAttention: expected query [.., E={}], key [.., kdim={}] and value [.., "
        "vdim={}] of one layout ({}) with one source length, got {}, {} and {}",
        embed_dim_, kdim_, vdim_,
        unbatched      ? "unbatched"
        : batch_first_ ? "[N, L, E]"
                       : "[L, N, E]",
        shape_str(inputs[0].sizes()), shape_str(inputs[1].sizes()), shape_str(inputs[2].sizes())));
  }
  const int64_t N = query.size(0), L = query.size(1), S = key.size(1), H = num_heads_,
                D = embed_dim_ / num_heads_;
  Tensor q;
  auto [k, v] = project(query, key, value, q);
  auto heads = [&](const Tensor& x, int64_t length) {
    return x.view({N, length, H, D}).transpose(1, 2);
  };
  q = heads(q, L);
  k = heads(k, S);
  v = heads(v, S);

  const bool causal_by_sdpa =
      flags_.is_causal && !attn_mask.defined() && !padding.defined() && !flags_.need_weights;
  const Tensor bias = attention_bias(attn_mask, padding, q, k, flags_.is_causal && !causal_by_sdpa);
  const double dropout_p = is_training() ? dropout_ : 0.0;

  Tensor attended, weights;
  if (!flags_.need_weights) {
    attended = scaled_dot_product_attention(q, k, v, bias, dropout_p, causal_by_sdpa);
  } else {
    Tensor scores = matmul(q * (1.0 / std::sqrt(double(D))), k.transpose(-2, -1));
    if (bias.defined()) scores = scores + bias;
    weights = softmax(scores, -1);
    if (dropout_p > 0.0) weights = dropout(weights, dropout_p, /*training=*/true);
    attended = matmul(weights, v);
    if (flags_.average_attn_weights) weights = mean(weights, {1});
    if (unbatched)
      weights = weights.reshape(Shape(weights.sizes().begin() + 1, weights.sizes().end()));
  }
  Tensor output = (*out_proj)(attended.transpose(1, 2).reshape({N, L, embed_dim_}));
  if (unbatched) {
    output = output.reshape({L, embed_dim_});
  } else if (!batch_first_) {
    output = output.transpose(0, 1);
  }
  return {output, weights};
}

}  // namespace zt::nn
