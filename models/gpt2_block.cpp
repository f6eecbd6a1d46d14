// GPT-2's block: GPT-2's initialisation (N(0, 0.02); the projections into the residual stream
// scaled by 1/sqrt(2 n_layer), as the GPT-2 paper prescribes) and its forward.
#include "models/gpt2_block.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "autograd/functions.h"
#include "models/causal_attention.h"

namespace zt::models {

namespace {

constexpr double kInitStd = 0.02;

double residual_init_std(const GPTConfig& config) {
  return kInitStd / std::sqrt(2.0 * double(config.n_layer));
}

// (x, past keys or None, past values or None): the layout every block and attention takes.
void check_block_inputs(const std::string& module, const nn::TensorList& inputs) {
  if (inputs.size() != 3 || !inputs[0].defined()) {
    throw std::invalid_argument(
        fmt::format("{}: takes (x, cached keys or None, cached values or None), got {} inputs",
                    module, inputs.size()));
  }
}

}  // namespace

GPT2Attention::GPT2Attention(const GPTConfig& config, int64_t heads)
    : n_head_(heads),
      head_dim_(config.head_dim()),
      dropout_(config.dropout),
      eager_attention_(config.eager_attention) {
  const int64_t inner = n_head_ * head_dim_;
  c_attn = register_module(
      "c_attn", std::make_shared<Conv1D>(config.n_embd, 3 * inner, config.bias, kInitStd));
  c_proj = register_module("c_proj", std::make_shared<Conv1D>(inner, config.n_embd, config.bias,
                                                              residual_init_std(config)));
  if (config.sparse_attention) {
    sparse_ =
        std::make_shared<SparseAttentionPlan>(*config.sparse_attention, n_head_, config.block_size);
  }
}

nn::TensorList GPT2Attention::forward_many(const nn::TensorList& inputs) {
  check_block_inputs(type_name(), inputs);
  const Tensor& x = inputs[0];
  const int64_t B = x.size(0), T = x.size(1), D = head_dim_, inner = n_head_ * D;
  // [B, T, 3 H D] -> three [B, H, T, D] views.
  std::vector<Tensor> qkv = split((*c_attn)(x), inner, 2);
  auto heads = [&](const Tensor& t) { return t.view({B, T, n_head_, D}).transpose(1, 2); };
  CausalAttentionResult attended = causal_self_attention(
      heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), inputs[1], inputs[2],
      is_training() ? dropout_ : 0.0, sparse_.get(), nullptr, eager_attention_);
  Tensor merged = attended.output.transpose(1, 2).reshape({B, T, inner});
  Tensor y = dropout((*c_proj)(merged), dropout_, is_training());
  return {y, attended.keys, attended.values};
}

GPT2MLP::GPT2MLP(const GPTConfig& config) : dropout_(config.dropout) {
  const int64_t width = config.resolved_intermediate_size();
  c_fc = register_module("c_fc",
                         std::make_shared<Conv1D>(config.n_embd, width, config.bias, kInitStd));
  c_proj = register_module("c_proj", std::make_shared<Conv1D>(width, config.n_embd, config.bias,
                                                              residual_init_std(config)));
}

Tensor GPT2MLP::forward(const Tensor& x) {
  return dropout((*c_proj)(gelu((*c_fc)(x), /*tanh_approximation=*/true)), dropout_, is_training());
}

GPT2Block::GPT2Block(const GPTConfig& config, int64_t layer) {
  ln_1 = register_module("ln_1",
                         std::make_shared<nn::LayerNorm>(Shape{config.n_embd}, config.norm_eps));
  attn = register_module("attn",
                         std::make_shared<GPT2Attention>(config, config.heads_in_layer(layer)));
  ln_2 = register_module("ln_2",
                         std::make_shared<nn::LayerNorm>(Shape{config.n_embd}, config.norm_eps));
  mlp = register_module("mlp", std::make_shared<GPT2MLP>(config));
}

nn::TensorList GPT2Block::forward_many(const nn::TensorList& inputs) {
  check_block_inputs(type_name(), inputs);
  nn::TensorList attended = (*attn)(nn::TensorList{(*ln_1)(inputs[0]), inputs[1], inputs[2]});
  Tensor x = inputs[0] + attended[0];
  x = x + (*mlp)((*ln_2)(x));
  return {x, attended[1], attended[2]};
}

}  // namespace zt::models
