// Llama's decoder stack split across a tensor group: the layers and the forward.
#include "tensor_parallel/llama_tensor_parallel.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "core/factory.h"
#include "models/causal_attention.h"

namespace zt::tensor_parallel {

namespace {

constexpr double kInitStd = 0.02;
constexpr uint64_t kTensorRankSeedOffset = 2718;  // Megatron's model-parallel seed offset

std::shared_ptr<ColumnParallelLinear> column(int64_t in, int64_t out, comm::Communicator& group) {
  return std::make_shared<ColumnParallelLinear>(
      in, out, group,
      ColumnParallelLinear::Options{.bias = false, .init_std = kInitStd, .weight_out_in = true});
}

std::shared_ptr<RowParallelLinear> row(int64_t in, int64_t out, comm::Communicator& group) {
  return std::make_shared<RowParallelLinear>(
      in, out, group,
      RowParallelLinear::Options{.bias = false, .init_std = kInitStd, .weight_out_in = true});
}

void check_three_inputs(const std::string& module, const nn::TensorList& inputs) {
  if (inputs.size() != 3 || !inputs[0].defined() || !inputs[1].defined() || !inputs[2].defined()) {
    throw std::invalid_argument(
        fmt::format("{}: takes (x, cos, sin), got {} inputs", module, inputs.size()));
  }
}

}  // namespace

TensorParallelLlamaAttention::TensorParallelLlamaAttention(const models::GPTConfig& config,
                                                           comm::Communicator& group,
                                                           uint64_t dropout_seed)
    : local_heads_(config.n_head / group.size()),
      local_kv_heads_(config.resolved_n_kv_head() / group.size()),
      head_dim_(config.head_dim()),
      dropout_(config.dropout),
      tensor_rank_generator_(dropout_seed + kTensorRankSeedOffset + uint64_t(group.rank())) {
  if (config.sparse_attention) {
    sparse_ = std::make_shared<models::SparseAttentionPlan>(
        *config.sparse_attention, config.n_head, config.block_size, group.rank() * local_heads_,
        local_heads_);
  }
  const int64_t C = config.n_embd, kv_width = config.resolved_n_kv_head() * head_dim_;
  q_proj = register_module("q_proj", column(C, config.n_head * head_dim_, group));
  k_proj = register_module("k_proj", column(C, kv_width, group));
  v_proj = register_module("v_proj", column(C, kv_width, group));
  o_proj = register_module("o_proj", row(config.n_head * head_dim_, C, group));
}

nn::TensorList TensorParallelLlamaAttention::forward_many(const nn::TensorList& inputs) {
  check_three_inputs(type_name(), inputs);
  const Tensor &x = inputs[0], &cos = inputs[1], &sin = inputs[2];
  const int64_t B = x.size(0), T = x.size(1);
  auto heads = [&](const Tensor& t, int64_t count) {
    return t.view({B, T, count, head_dim_}).transpose(1, 2);
  };
  Tensor q = rotary_embedding(heads((*q_proj)(x), local_heads_), cos, sin);
  Tensor k = rotary_embedding(heads((*k_proj)(x), local_kv_heads_), cos, sin);
  Tensor v = heads((*v_proj)(x), local_kv_heads_);
  // Dropout inside the tensor-parallel region: this rank's heads draw from its own generator.
  models::CausalAttentionResult attended =
      models::causal_self_attention(q, k, v, Tensor(), Tensor(), is_training() ? dropout_ : 0.0,
                                    sparse_.get(), &tensor_rank_generator_);
  Tensor merged = attended.output.transpose(1, 2).reshape({B, T, local_heads_ * head_dim_});
  return {(*o_proj)(merged)};
}

TensorParallelLlamaMLP::TensorParallelLlamaMLP(const models::GPTConfig& config,
                                               comm::Communicator& group) {
  const int64_t width = config.resolved_intermediate_size();
  gate_proj = register_module("gate_proj", column(config.n_embd, width, group));
  up_proj = register_module("up_proj", column(config.n_embd, width, group));
  down_proj = register_module("down_proj", row(width, config.n_embd, group));
}

Tensor TensorParallelLlamaMLP::forward(const Tensor& x) {
  return (*down_proj)(silu((*gate_proj)(x)) * (*up_proj)(x));
}

TensorParallelLlamaDecoderLayer::TensorParallelLlamaDecoderLayer(const models::GPTConfig& config,
                                                                 comm::Communicator& group,
                                                                 uint64_t dropout_seed)
    : dropout_(config.dropout) {
  self_attn = register_module(
      "self_attn", std::make_shared<TensorParallelLlamaAttention>(config, group, dropout_seed));
  mlp = register_module("mlp", std::make_shared<TensorParallelLlamaMLP>(config, group));
  input_layernorm = register_module(
      "input_layernorm", std::make_shared<nn::RMSNorm>(Shape{config.n_embd}, config.norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm",
                      std::make_shared<nn::RMSNorm>(Shape{config.n_embd}, config.norm_eps));
}

nn::TensorList TensorParallelLlamaDecoderLayer::forward_many(const nn::TensorList& inputs) {
  check_three_inputs(type_name(), inputs);
  nn::TensorList attended =
      (*self_attn)(nn::TensorList{(*input_layernorm)(inputs[0]), inputs[1], inputs[2]});
  // The residual branches are replicated after the row-parallel all-reduce: default generator.
  Tensor x = inputs[0] + dropout(attended[0], dropout_, is_training());
  return {x + dropout((*mlp)((*post_attention_layernorm)(x)), dropout_, is_training())};
}

TensorParallelLlamaModel::TensorParallelLlamaModel(const models::GPTConfig& config,
                                                   comm::Communicator& group, uint64_t dropout_seed)
    : config_(config) {
  embed_tokens = register_module("embed_tokens", std::make_shared<VocabParallelEmbedding>(
                                                     config.vocab_size, config.n_embd, group));
  layers = register_module("layers", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < config.n_layer; ++i)
    layers->push_back(
        std::make_shared<TensorParallelLlamaDecoderLayer>(config, group, dropout_seed));
  norm =
      register_module("norm", std::make_shared<nn::RMSNorm>(Shape{config.n_embd}, config.norm_eps));
}

Tensor TensorParallelLlamaModel::forward(const Tensor& idx) {
  Tensor x = (*embed_tokens)(idx);
  auto [cos, sin] =
      rotary_tables(0, idx.size(1), config_.head_dim(), config_.rope_theta, options_of(x));
  for (size_t layer = 0; layer < layers->size(); ++layer)
    x = (*(*layers)[layer])(nn::TensorList{x, cos, sin})[0];
  return (*norm)(x);
}

}  // namespace zt::tensor_parallel
