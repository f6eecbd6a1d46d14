// Llama's pipeline layers split across a tensor group: the token embedding, the decoder layer
// as a one-tensor layer, and the specs under the whole model's names.
#include "pipeline/llama_tensor_parallel_layers.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "core/factory.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/llama_tensor_parallel.h"
#include "tensor_parallel/sequence_parallel.h"
#include "tensor_parallel/sequence_parallel_layers.h"
#include "tensor_parallel/vocab_parallel.h"

namespace zt::pipeline {

namespace {

constexpr double kInitStd = 0.02;

// model.embed_tokens over this rank's vocabulary rows, summed over the tensor group (reduce-
// scattered to this rank's tokens with sequence parallelism). No position table: the decoder
// layers rotate queries and keys.
class TensorParallelLlamaEmbeddingLayer final : public nn::Module {
 public:
  TensorParallelLlamaEmbeddingLayer(const models::GPTConfig& config, comm::Communicator& group,
                                    bool sequence_parallel)
      : group_(&group), sequence_parallel_(sequence_parallel) {
    embed_tokens_ = register_module(
        "embed_tokens", std::make_shared<tensor_parallel::VocabParallelEmbedding>(
                            config.vocab_size, config.n_embd, group, kInitStd, sequence_parallel));
  }
  std::string type_name() const override { return "LlamaEmbedding"; }

 protected:
  Tensor forward(const Tensor& idx) override {
    if (!idx.defined() || idx.dtype() != DType::i64 || idx.dim() != 2)
      throw std::invalid_argument(
          fmt::format("LlamaEmbedding: expected i64 token ids [batch, time], got {} {}",
                      idx.defined() ? dtype_name(idx.dtype()) : "None",
                      idx.defined() ? shape_str(idx.sizes()) : ""));
    if (sequence_parallel_)
      tensor_parallel::check_sequence_parallel_length(idx.size(1), group_->size());
    return (*embed_tokens_)(idx);
  }

 private:
  comm::Communicator* group_;
  bool sequence_parallel_;
  std::shared_ptr<tensor_parallel::VocabParallelEmbedding> embed_tokens_;
};

// A split decoder layer taking one tensor: the rotary tables of positions [0, T) are made here
// (T is tp times the rank's tokens with sequence parallelism: the attention sees them all).
// The layer's children are registered here, so the parameters keep the layer's names.
class TensorParallelLlamaBlockLayer final : public nn::Module {
 public:
  TensorParallelLlamaBlockLayer(const models::GPTConfig& config, comm::Communicator& group,
                                uint64_t dropout_seed, int64_t layer, bool sequence_parallel)
      : config_(config),
        sequence_ranks_(sequence_parallel ? group.size() : 1),
        block_(std::make_shared<tensor_parallel::TensorParallelLlamaDecoderLayer>(
            config, group, dropout_seed, layer, sequence_parallel)) {
    for (const auto& [name, child] : block_->named_children()) register_module(name, child);
  }
  std::string type_name() const override { return "LlamaDecoderLayer"; }

 protected:
  Tensor forward(const Tensor& x) override {
    auto [cos, sin] = rotary_tables(0, x.size(1) * sequence_ranks_, config_.head_dim(),
                                    config_.rope_theta, options_of(x));
    return (*block_)(nn::TensorList{x, cos, sin})[0];
  }

 private:
  models::GPTConfig config_;
  int64_t sequence_ranks_;
  std::shared_ptr<tensor_parallel::TensorParallelLlamaDecoderLayer> block_;
};

}  // namespace

LayerSpecs llama_tensor_parallel_layer_specs(const models::GPTConfig& config,
                                             comm::Communicator& tensor_group,
                                             uint64_t dropout_seed, bool sequence_parallel) {
  tensor_parallel::check_tensor_parallel_config(config, tensor_group.size());
  comm::Communicator* group = &tensor_group;
  const bool sp = sequence_parallel;
  const std::string tied = config.tie_word_embeddings ? "embedding" : "";
  LayerSpecs specs;
  specs.push_back({.type_name = "LlamaEmbedding",
                   .build =
                       [config, group, sp] {
                         return std::make_shared<TensorParallelLlamaEmbeddingLayer>(config, *group,
                                                                                    sp);
                       },
                   .tied_key = tied,
                   .tied_parameter = "embed_tokens.weight",
                   .state_prefix = "model."});
  for (int64_t layer = 0; layer < config.n_layer; ++layer)
    specs.push_back({.type_name = "LlamaDecoderLayer",
                     .build =
                         [config, group, dropout_seed, layer, sp] {
                           return std::make_shared<TensorParallelLlamaBlockLayer>(
                               config, *group, dropout_seed, layer, sp);
                         },
                     .state_prefix = fmt::format("model.layers.{}.", layer)});
  specs.push_back({.type_name = "RMSNorm",
                   .build =
                       [config, group, sp] {
                         return tensor_parallel::make_rms_norm(config.n_embd, config.norm_eps,
                                                               *group, sp);
                       },
                   .state_prefix = "model.norm."});
  specs.push_back({.type_name = "LMHead",
                   .build = [config, group, sp] { return vocab_parallel_head(config, *group, sp); },
                   .tied_key = tied,
                   .tied_parameter = "weight",
                   .state_prefix = "lm_head."});
  return specs;
}

}  // namespace zt::pipeline
