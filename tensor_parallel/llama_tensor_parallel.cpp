// Llama's decoder stack split across a tensor group: the layers and the forward.
#include "tensor_parallel/llama_tensor_parallel.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "core/factory.h"
#include "models/causal_attention.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/sequence_parallel.h"
#include "tensor_parallel/sequence_parallel_layers.h"
#include "tensor_parallel/tp_region.h"

namespace zt::tensor_parallel {

namespace {

constexpr double kInitStd = 0.02;

// The caller puts the column layers' shared input into the region once (into_region).
std::shared_ptr<ColumnParallelLinear> column(int64_t in, int64_t out, comm::Communicator& group) {
  return std::make_shared<ColumnParallelLinear>(
      in, out, group,
      ColumnParallelLinear::Options{
          .bias = false, .init_std = kInitStd, .weight_out_in = true, .input_in_region = true});
}

std::shared_ptr<RowParallelLinear> row(int64_t in, int64_t out, comm::Communicator& group,
                                       bool sequence_parallel) {
  return std::make_shared<RowParallelLinear>(
      in, out, group,
      RowParallelLinear::Options{.bias = false,
                                 .init_std = kInitStd,
                                 .weight_out_in = true,
                                 .sequence_parallel = sequence_parallel});
}

// The input of the column layers, through one region operator for all of them: this rank's
// tokens all-gathered, or the replicated states (their gradient all-reduced in backward).
Tensor into_region(const Tensor& x, comm::Communicator& group, bool sequence_parallel) {
  return sequence_parallel ? gather_from_sequence_parallel_region(x, group)
                           : copy_to_tp_region(x, group);
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
                                                           uint64_t dropout_seed, int64_t layer,
                                                           bool sequence_parallel)
    : local_heads_(config.n_head / group.size()),
      local_kv_heads_(config.resolved_n_kv_head() / group.size()),
      head_dim_(config.head_dim()),
      dropout_(config.dropout),
      tensor_rank_generator_(attention_dropout_seed(dropout_seed, layer, group.rank())),
      group_(&group),
      sequence_parallel_(sequence_parallel) {
  if (config.sparse_attention) {
    sparse_ = std::make_shared<models::SparseAttentionPlan>(
        *config.sparse_attention, config.n_head, config.block_size, group.rank() * local_heads_,
        local_heads_);
  }
  const int64_t C = config.n_embd, kv_width = config.resolved_n_kv_head() * head_dim_;
  const bool sp = sequence_parallel;
  q_proj = register_module("q_proj", column(C, config.n_head * head_dim_, group));
  k_proj = register_module("k_proj", column(C, kv_width, group));
  v_proj = register_module("v_proj", column(C, kv_width, group));
  o_proj = register_module("o_proj", row(config.n_head * head_dim_, C, group, sp));
}

nn::TensorList TensorParallelLlamaAttention::forward_many(const nn::TensorList& inputs) {
  check_three_inputs(type_name(), inputs);
  const Tensor &cos = inputs[1], &sin = inputs[2];
  const Tensor x = into_region(inputs[0], *group_, sequence_parallel_);
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
                                               comm::Communicator& group, bool sequence_parallel)
    : group_(&group), sequence_parallel_(sequence_parallel) {
  const int64_t width = config.resolved_intermediate_size();
  const bool sp = sequence_parallel;
  gate_proj = register_module("gate_proj", column(config.n_embd, width, group));
  up_proj = register_module("up_proj", column(config.n_embd, width, group));
  down_proj = register_module("down_proj", row(width, config.n_embd, group, sp));
}

Tensor TensorParallelLlamaMLP::forward(const Tensor& input) {
  const Tensor x = into_region(input, *group_, sequence_parallel_);
  return (*down_proj)(silu((*gate_proj)(x)) * (*up_proj)(x));
}

TensorParallelLlamaDecoderLayer::TensorParallelLlamaDecoderLayer(const models::GPTConfig& config,
                                                                 comm::Communicator& group,
                                                                 uint64_t dropout_seed,
                                                                 int64_t layer,
                                                                 bool sequence_parallel)
    : dropout_(config.dropout), group_(&group), sequence_parallel_(sequence_parallel) {
  self_attn =
      register_module("self_attn", std::make_shared<TensorParallelLlamaAttention>(
                                       config, group, dropout_seed, layer, sequence_parallel));
  mlp = register_module("mlp",
                        std::make_shared<TensorParallelLlamaMLP>(config, group, sequence_parallel));
  input_layernorm = register_module(
      "input_layernorm", make_rms_norm(config.n_embd, config.norm_eps, group, sequence_parallel));
  post_attention_layernorm =
      register_module("post_attention_layernorm",
                      make_rms_norm(config.n_embd, config.norm_eps, group, sequence_parallel));
}

nn::TensorList TensorParallelLlamaDecoderLayer::forward_many(const nn::TensorList& inputs) {
  check_three_inputs(type_name(), inputs);
  nn::TensorList attended =
      (*self_attn)(nn::TensorList{(*input_layernorm)(inputs[0]), inputs[1], inputs[2]});
  // The residual branches are replicated after the row-parallel all-reduce: default generator.
  const bool training = is_training();
  Tensor x =
      inputs[0] + hidden_dropout(attended[0], dropout_, training, *group_, sequence_parallel_);
  return {x + hidden_dropout((*mlp)((*post_attention_layernorm)(x)), dropout_, training, *group_,
                             sequence_parallel_)};
}

TensorParallelLlamaModel::TensorParallelLlamaModel(const models::GPTConfig& config,
                                                   comm::Communicator& group, uint64_t dropout_seed,
                                                   bool sequence_parallel)
    : config_(config) {
  embed_tokens = register_module(
      "embed_tokens", std::make_shared<VocabParallelEmbedding>(config.vocab_size, config.n_embd,
                                                               group, kInitStd, sequence_parallel));
  layers = register_module("layers", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < config.n_layer; ++i)
    layers->push_back(std::make_shared<TensorParallelLlamaDecoderLayer>(config, group, dropout_seed,
                                                                        i, sequence_parallel));
  norm = register_module("norm",
                         make_rms_norm(config.n_embd, config.norm_eps, group, sequence_parallel));
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
