// Llama's decoder layer: Hugging Face's initialisation (every projection N(0, 0.02), norms
// ones) and its forward.
#include "models/llama_block.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "models/causal_attention.h"
#include "nn/init.h"

namespace zt::models {

namespace {

constexpr double kInitStd = 0.02;

std::shared_ptr<nn::Linear> projection(int64_t in, int64_t out) {
  auto layer = std::make_shared<nn::Linear>(in, out, /*bias=*/false);
  nn::init::normal_(layer->weight, 0.0, kInitStd);
  return layer;
}

void check_layer_inputs(const std::string& module, const nn::TensorList& inputs) {
  if (inputs.size() != 5 || !inputs[0].defined() || !inputs[1].defined() || !inputs[2].defined()) {
    throw std::invalid_argument(fmt::format(
        "{}: takes (x, cos, sin, cached keys or None, cached values or None), got {} inputs",
        module, inputs.size()));
  }
}

}  // namespace

LlamaAttention::LlamaAttention(const GPTConfig& config, int64_t layer)
    : n_head_(config.heads_in_layer(layer)),
      n_kv_head_(config.kv_heads_in_layer(layer)),
      head_dim_(config.head_dim()),
      dropout_(config.dropout),
      eager_attention_(config.eager_attention) {
  const int64_t C = config.n_embd;
  q_proj = register_module("q_proj", projection(C, n_head_ * head_dim_));
  k_proj = register_module("k_proj", projection(C, n_kv_head_ * head_dim_));
  v_proj = register_module("v_proj", projection(C, n_kv_head_ * head_dim_));
  o_proj = register_module("o_proj", projection(n_head_ * head_dim_, C));
  if (config.sparse_attention) {
    sparse_ = std::make_shared<SparseAttentionPlan>(*config.sparse_attention, config.n_head,
                                                    config.block_size);
  }
}

nn::TensorList LlamaAttention::forward_many(const nn::TensorList& inputs) {
  check_layer_inputs(type_name(), inputs);
  const Tensor &x = inputs[0], &cos = inputs[1], &sin = inputs[2];
  const int64_t B = x.size(0), T = x.size(1);
  auto heads = [&](const Tensor& t, int64_t count) {
    return t.view({B, T, count, head_dim_}).transpose(1, 2);
  };
  Tensor q = rotary_embedding(heads((*q_proj)(x), n_head_), cos, sin);
  Tensor k = rotary_embedding(heads((*k_proj)(x), n_kv_head_), cos, sin);
  Tensor v = heads((*v_proj)(x), n_kv_head_);
  CausalAttentionResult attended =
      causal_self_attention(q, k, v, inputs[3], inputs[4], is_training() ? dropout_ : 0.0,
                            sparse_.get(), nullptr, eager_attention_);
  Tensor merged = attended.output.transpose(1, 2).reshape({B, T, n_head_ * head_dim_});
  return {(*o_proj)(merged), attended.keys, attended.values};
}

LlamaMLP::LlamaMLP(const GPTConfig& config) {
  const int64_t width = config.resolved_intermediate_size();
  gate_proj = register_module("gate_proj", projection(config.n_embd, width));
  up_proj = register_module("up_proj", projection(config.n_embd, width));
  down_proj = register_module("down_proj", projection(width, config.n_embd));
}

Tensor LlamaMLP::forward(const Tensor& x) {
  return (*down_proj)(silu((*gate_proj)(x)) * (*up_proj)(x));
}

LlamaDecoderLayer::LlamaDecoderLayer(const GPTConfig& config, int64_t layer)
    : dropout_(config.dropout) {
  self_attn = register_module("self_attn", std::make_shared<LlamaAttention>(config, layer));
  mlp = register_module("mlp", std::make_shared<LlamaMLP>(config));
  input_layernorm = register_module(
      "input_layernorm", std::make_shared<nn::RMSNorm>(Shape{config.n_embd}, config.norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm",
                      std::make_shared<nn::RMSNorm>(Shape{config.n_embd}, config.norm_eps));
}

nn::TensorList LlamaDecoderLayer::forward_many(const nn::TensorList& inputs) {
  check_layer_inputs(type_name(), inputs);
  nn::TensorList attended = (*self_attn)(
      nn::TensorList{(*input_layernorm)(inputs[0]), inputs[1], inputs[2], inputs[3], inputs[4]});
  Tensor x = inputs[0] + dropout(attended[0], dropout_, is_training());
  x = x + dropout((*mlp)((*post_attention_layernorm)(x)), dropout_, is_training());
  return {x, attended[1], attended[2]};
}

}  // namespace zt::models
