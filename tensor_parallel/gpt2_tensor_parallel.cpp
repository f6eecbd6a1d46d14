// GPT-2 in tensor-parallel form: the checks of the split, the layers and the forward.
#include "tensor_parallel/gpt2_tensor_parallel.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "autograd/functions.h"
#include "core/factory.h"
#include "models/causal_attention.h"
#include "nn/init.h"
#include "tensor_parallel/llama_tensor_parallel.h"
#include "tensor_parallel/sequence_parallel.h"
#include "tensor_parallel/sequence_parallel_layers.h"
#include "tensor_parallel/tp_region.h"

namespace zt::tensor_parallel {

namespace {

constexpr double kInitStd = 0.02;

double residual_init_std(const models::GPTConfig& config) {
  return kInitStd / std::sqrt(2.0 * double(config.n_layer));
}

}  // namespace

Tensor hidden_dropout(const Tensor& x, double p, bool training, comm::Communicator& group,
                      bool sequence_parallel) {
  return sequence_parallel ? sequence_parallel_dropout(x, p, training, group)
                           : dropout(x, p, training);
}

namespace {}  // namespace

std::shared_ptr<nn::Module> gpt2_position_embedding(const models::GPTConfig& config,
                                                    comm::Communicator& group,
                                                    bool sequence_parallel) {
  if (sequence_parallel)
    return std::make_shared<SequenceParallelPositionEmbedding>(config.block_size, config.n_embd,
                                                               group, kInitStd);
  auto wpe = std::make_shared<nn::Embedding>(config.block_size, config.n_embd);
  nn::init::normal_(wpe->weight, 0.0, kInitStd);
  return wpe;
}

void check_tensor_parallel_config(const models::GPTConfig& config, int tensor_parallel_size) {
  config.validate();
  const int64_t tp = tensor_parallel_size;
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument(fmt::format("tensor parallelism: {}", what));
  };
  if (tp < 1) fail(fmt::format("tensor-parallel size {} must be >= 1", tp));
  if (config.n_head % tp != 0) {
    fail(fmt::format("n_head {} is not divisible by the tensor-parallel size {}", config.n_head,
                     tp));
  }
  if (config.resolved_n_kv_head() % tp != 0) {
    fail(fmt::format("n_kv_head {} is not divisible by the tensor-parallel size {}",
                     config.resolved_n_kv_head(), tp));
  }
  if (config.vocab_size % tp != 0) {
    fail(fmt::format("vocab_size {} is not divisible by the tensor-parallel size {}",
                     config.vocab_size, tp));
  }
  if (config.resolved_intermediate_size() % tp != 0) {
    fail(fmt::format("the MLP width {} is not divisible by the tensor-parallel size {}",
                     config.resolved_intermediate_size(), tp));
  }
}

TensorParallelGPT2Attention::TensorParallelGPT2Attention(const models::GPTConfig& config,
                                                         comm::Communicator& group,
                                                         uint64_t dropout_seed, int64_t layer,
                                                         bool sequence_parallel)
    : local_heads_(config.n_head / group.size()),
      local_width_(config.n_embd / group.size()),
      dropout_(config.dropout),
      tensor_rank_generator_(attention_dropout_seed(dropout_seed, layer, group.rank())),
      group_(&group),
      sequence_parallel_(sequence_parallel) {
  if (config.sparse_attention) {
    sparse_ = std::make_shared<models::SparseAttentionPlan>(
        *config.sparse_attention, config.n_head, config.block_size, group.rank() * local_heads_,
        local_heads_);
  }
  c_attn = register_module(
      "c_attn", std::make_shared<ColumnParallelLinear>(
                    config.n_embd, 3 * config.n_embd, group,
                    ColumnParallelLinear::Options{.bias = config.bias,
                                                  .fused_blocks = 3,
                                                  .init_std = kInitStd,
                                                  .sequence_parallel = sequence_parallel}));
  c_proj = register_module("c_proj",
                           std::make_shared<RowParallelLinear>(
                               config.n_embd, config.n_embd, group,
                               RowParallelLinear::Options{.bias = config.bias,
                                                          .init_std = residual_init_std(config),
                                                          .sequence_parallel = sequence_parallel}));
}

Tensor TensorParallelGPT2Attention::forward(const Tensor& x) {
  // [B, T, 3C/tp]: this rank's heads of q, k and v side by side, for the whole sequence.
  std::vector<Tensor> qkv = split((*c_attn)(x), local_width_, 2);
  const int64_t B = qkv[0].size(0), T = qkv[0].size(1), D = local_width_ / local_heads_;
  auto heads = [&](const Tensor& t) { return t.view({B, T, local_heads_, D}).transpose(1, 2); };
  // Dropout inside the tensor-parallel region: this rank's heads draw from its own generator.
  models::CausalAttentionResult attended = models::causal_self_attention(
      heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), Tensor(), Tensor(),
      is_training() ? dropout_ : 0.0, sparse_.get(), &tensor_rank_generator_);
  Tensor merged = attended.output.transpose(1, 2).reshape({B, T, local_width_});
  // After the row-parallel all-reduce the hidden states are replicated: the default generator.
  return hidden_dropout((*c_proj)(merged), dropout_, is_training(), *group_, sequence_parallel_);
}

TensorParallelGPT2MLP::TensorParallelGPT2MLP(const models::GPTConfig& config,
                                             comm::Communicator& group, bool sequence_parallel)
    : dropout_(config.dropout), group_(&group), sequence_parallel_(sequence_parallel) {
  const int64_t width = config.resolved_intermediate_size();
  c_fc = register_module(
      "c_fc",
      std::make_shared<ColumnParallelLinear>(
          config.n_embd, width, group,
          ColumnParallelLinear::Options{
              .bias = config.bias, .init_std = kInitStd, .sequence_parallel = sequence_parallel}));
  c_proj = register_module("c_proj",
                           std::make_shared<RowParallelLinear>(
                               width, config.n_embd, group,
                               RowParallelLinear::Options{.bias = config.bias,
                                                          .init_std = residual_init_std(config),
                                                          .sequence_parallel = sequence_parallel}));
}

Tensor TensorParallelGPT2MLP::forward(const Tensor& x) {
  return hidden_dropout((*c_proj)(gelu((*c_fc)(x), /*tanh_approximation=*/true)), dropout_,
                        is_training(), *group_, sequence_parallel_);
}

TensorParallelGPT2Block::TensorParallelGPT2Block(const models::GPTConfig& config,
                                                 comm::Communicator& group, uint64_t dropout_seed,
                                                 int64_t layer, bool sequence_parallel) {
  ln_1 = register_module("ln_1",
                         make_layer_norm(config.n_embd, config.norm_eps, group, sequence_parallel));
  attn = register_module("attn", std::make_shared<TensorParallelGPT2Attention>(
                                     config, group, dropout_seed, layer, sequence_parallel));
  ln_2 = register_module("ln_2",
                         make_layer_norm(config.n_embd, config.norm_eps, group, sequence_parallel));
  mlp = register_module("mlp",
                        std::make_shared<TensorParallelGPT2MLP>(config, group, sequence_parallel));
}

Tensor TensorParallelGPT2Block::forward(const Tensor& x) {
  Tensor attended = x + (*attn)((*ln_1)(x));
  return attended + (*mlp)((*ln_2)(attended));
}

VocabParallelHead::VocabParallelHead(const Tensor& embedding_shard, comm::Communicator& group,
                                     bool sequence_parallel)
    : group_(&group), sequence_parallel_(sequence_parallel) {
  weight = register_parameter("weight", embedding_shard);
}

Tensor VocabParallelHead::forward(const Tensor& hidden) {
  return linear(sequence_parallel_ ? gather_from_sequence_parallel_region(hidden, *group_)
                                   : copy_to_tp_region(hidden, *group_),
                weight);
}

TensorParallelGPT::TensorParallelGPT(const models::GPTConfig& config, comm::Communicator& group,
                                     uint64_t dropout_seed, bool sequence_parallel)
    : config_(config), group_(&group), sequence_parallel_(sequence_parallel) {
  check_tensor_parallel_config(config, group.size());
  Tensor embedding_shard;
  if (config.architecture == models::Architecture::gpt2) {
    wte_ = register_module(
        "wte", std::make_shared<VocabParallelEmbedding>(config.vocab_size, config.n_embd, group,
                                                        kInitStd, sequence_parallel));
    wpe_ = register_module("wpe", gpt2_position_embedding(config, group, sequence_parallel));
    h_ = register_module("h", std::make_shared<nn::ModuleList>());
    for (int64_t i = 0; i < config.n_layer; ++i)
      h_->push_back(std::make_shared<TensorParallelGPT2Block>(config, group, dropout_seed, i,
                                                              sequence_parallel));
    ln_f_ = register_module(
        "ln_f", make_layer_norm(config.n_embd, config.norm_eps, group, sequence_parallel));
    embedding_shard = wte_->weight;
  } else {
    auto llama =
        std::make_shared<TensorParallelLlamaModel>(config, group, dropout_seed, sequence_parallel);
    llama_ = register_module("model", llama);
    embedding_shard = llama->embed_tokens->weight;
  }
  if (config.tie_word_embeddings) {
    lm_head_ = register_module(
        "lm_head", std::make_shared<VocabParallelHead>(embedding_shard, group, sequence_parallel));
  } else {
    lm_head_ = register_module(
        "lm_head", std::make_shared<ColumnParallelLinear>(
                       config.n_embd, config.vocab_size, group,
                       ColumnParallelLinear::Options{.bias = false,
                                                     .init_std = kInitStd,
                                                     .weight_out_in = true,
                                                     .sequence_parallel = sequence_parallel}));
  }
}

std::string TensorParallelGPT::extra_repr() const {
  return fmt::format(
      "{}, vocab_size={}, block_size={}, n_layer={}, n_head={}, n_kv_head={}, n_embd={}, tp={}{}",
      models::architecture_name(config_.architecture), config_.vocab_size, config_.block_size,
      config_.n_layer, config_.n_head, config_.resolved_n_kv_head(), config_.n_embd, group_->size(),
      sequence_parallel_ ? ", sequence_parallel" : "");
}

Tensor TensorParallelGPT::forward(const Tensor& idx) {
  if (!idx.defined() || idx.dtype() != DType::i64 || idx.dim() != 2 ||
      idx.size(1) > config_.block_size) {
    throw std::invalid_argument(fmt::format(
        "TensorParallelGPT: idx must be i64 token ids [batch, time <= {}], got {}",
        config_.block_size,
        idx.defined() ? fmt::format("{} {}", dtype_name(idx.dtype()), shape_str(idx.sizes()))
                      : "None"));
  }
  if (sequence_parallel_) check_sequence_parallel_length(idx.size(1), group_->size());
  return (*lm_head_)(llama_ ? (*llama_)(idx) : gpt2_hidden(idx));
}

Tensor TensorParallelGPT::gpt2_hidden(const Tensor& idx) {
  // The sequence-parallel table takes the tokens and looks up this rank's positions itself.
  const Tensor positions =
      sequence_parallel_ ? idx : arange(0.0, double(idx.size(1)), 1.0, options_of(idx));
  Tensor x = hidden_dropout((*wte_)(idx) + (*wpe_)(positions), config_.dropout, is_training(),
                            *group_, sequence_parallel_);
  for (size_t layer = 0; layer < h_->size(); ++layer) x = (*(*h_)[layer])(x);
  return (*ln_f_)(x);
}

}  // namespace zt::tensor_parallel
