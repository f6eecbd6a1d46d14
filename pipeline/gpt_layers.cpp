// GPT layer specs: the embedding layers and the block wrappers that make GPT-2's and Llama's
// pieces one-tensor-in, one-tensor-out layers with GPT's parameter names.
#include "pipeline/gpt_layers.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "core/factory.h"
#include "models/gpt2_block.h"
#include "models/llama_block.h"
#include "models/lm_head.h"
#include "nn/embedding.h"
#include "nn/init.h"
#include "nn/layer_norm.h"
#include "nn/rms_norm.h"

namespace zt::pipeline {

namespace {

// wte(idx) + wpe(positions), then dropout: GPT's input, from i64 tokens [B, T].
class GPTEmbeddingLayer final : public nn::Module {
 public:
  explicit GPTEmbeddingLayer(const models::GPTConfig& config) : dropout_(config.dropout) {
    wte_ =
        register_module("wte", std::make_shared<nn::Embedding>(config.vocab_size, config.n_embd));
    wpe_ =
        register_module("wpe", std::make_shared<nn::Embedding>(config.block_size, config.n_embd));
    nn::init::normal_(wte_->weight, 0.0, 0.02);
    nn::init::normal_(wpe_->weight, 0.0, 0.02);
  }
  std::string type_name() const override { return "GPTEmbedding"; }

 protected:
  Tensor forward(const Tensor& idx) override {
    if (!idx.defined() || idx.dtype() != DType::i64 || idx.dim() != 2 ||
        idx.size(1) > wpe_->weight.size(0))
      throw std::invalid_argument(
          fmt::format("GPTEmbedding: expected i64 token ids [batch, time <= {}], got {} {}",
                      wpe_->weight.size(0), idx.defined() ? dtype_name(idx.dtype()) : "None",
                      idx.defined() ? shape_str(idx.sizes()) : ""));
    const Tensor positions = arange(0.0, double(idx.size(1)), 1.0, options_of(idx));
    return dropout((*wte_)(idx) + (*wpe_)(positions), dropout_, is_training());
  }

 private:
  double dropout_;
  std::shared_ptr<nn::Embedding> wte_, wpe_;
};

// A GPT-2 block as a one-tensor layer (no KV cache). The block's children are registered here
// directly, so the parameters keep the block's names (ln_1.weight, attn.c_attn.weight, ...).
class GPTBlockLayer final : public nn::Module {
 public:
  GPTBlockLayer(const models::GPTConfig& config, int64_t layer)
      : block_(std::make_shared<models::GPT2Block>(config, layer)) {
    for (const auto& [name, child] : block_->named_children()) register_module(name, child);
  }
  std::string type_name() const override { return "GPT2Block"; }

 protected:
  Tensor forward(const Tensor& x) override {
    return (*block_)(nn::TensorList{x, Tensor(), Tensor()})[0];
  }

 private:
  std::shared_ptr<models::GPT2Block> block_;
};

// Llama's token embedding (no position table: the blocks rotate queries and keys).
class LlamaEmbeddingLayer final : public nn::Module {
 public:
  explicit LlamaEmbeddingLayer(const models::GPTConfig& config) {
    embed_tokens_ = register_module(
        "embed_tokens", std::make_shared<nn::Embedding>(config.vocab_size, config.n_embd));
    nn::init::normal_(embed_tokens_->weight, 0.0, 0.02);
  }
  std::string type_name() const override { return "LlamaEmbedding"; }

 protected:
  Tensor forward(const Tensor& idx) override {
    if (!idx.defined() || idx.dtype() != DType::i64 || idx.dim() != 2)
      throw std::invalid_argument(
          fmt::format("LlamaEmbedding: expected i64 token ids [batch, time], got {} {}",
                      idx.defined() ? dtype_name(idx.dtype()) : "None",
                      idx.defined() ? shape_str(idx.sizes()) : ""));
    return (*embed_tokens_)(idx);
  }

 private:
  std::shared_ptr<nn::Embedding> embed_tokens_;
};

// A Llama decoder layer as a one-tensor layer: the rotary tables of positions [0, T) are
// made here (LlamaModel makes them once per call for every layer; a stage has only its own).
class LlamaBlockLayer final : public nn::Module {
 public:
  explicit LlamaBlockLayer(const models::GPTConfig& config)
      : config_(config), block_(std::make_shared<models::LlamaDecoderLayer>(config)) {
    for (const auto& [name, child] : block_->named_children()) register_module(name, child);
  }
  std::string type_name() const override { return "LlamaDecoderLayer"; }

 protected:
  Tensor forward(const Tensor& x) override {
    auto [cos, sin] =
        rotary_tables(0, x.size(1), config_.head_dim(), config_.rope_theta, options_of(x));
    return (*block_)(nn::TensorList{x, cos, sin, Tensor(), Tensor()})[0];
  }

 private:
  models::GPTConfig config_;
  std::shared_ptr<models::LlamaDecoderLayer> block_;
};

// Llama under the whole GPT's names: model.embed_tokens, model.layers.N, model.norm, lm_head.
LayerSpecs llama_layer_specs(const models::GPTConfig& config) {
  const std::string tied = config.tie_word_embeddings ? "embedding" : "";
  LayerSpecs specs;
  specs.push_back({.type_name = "LlamaEmbedding",
                   .build = [config] { return std::make_shared<LlamaEmbeddingLayer>(config); },
                   .tied_key = tied,
                   .tied_parameter = "embed_tokens.weight",
                   .state_prefix = "model."});
  for (int64_t layer = 0; layer < config.n_layer; ++layer)
    specs.push_back({.type_name = "LlamaDecoderLayer",
                     .build = [config] { return std::make_shared<LlamaBlockLayer>(config); },
                     .state_prefix = fmt::format("model.layers.{}.", layer)});
  specs.push_back({.type_name = "RMSNorm",
                   .build =
                       [config] {
                         return std::make_shared<nn::RMSNorm>(Shape{config.n_embd},
                                                              config.norm_eps);
                       },
                   .state_prefix = "model.norm."});
  specs.push_back(
      {.type_name = "LMHead",
       .build =
           [config] { return std::make_shared<models::LMHead>(config.vocab_size, config.n_embd); },
       .tied_key = tied,
       .tied_parameter = "weight",
       .state_prefix = "lm_head."});
  return specs;
}

}  // namespace

LayerSpecs gpt_layer_specs(const models::GPTConfig& config) {
  config.validate();
  if (config.architecture == models::Architecture::llama) return llama_layer_specs(config);
  const std::string tied = config.tie_word_embeddings ? "embedding" : "";
  LayerSpecs specs;
  specs.push_back({.type_name = "GPTEmbedding",
                   .build = [config] { return std::make_shared<GPTEmbeddingLayer>(config); },
                   .tied_key = tied,
                   .tied_parameter = "wte.weight",
                   .state_prefix = ""});
  for (int64_t layer = 0; layer < config.n_layer; ++layer) {
    specs.push_back(
        {.type_name = "GPT2Block",
         .build = [config, layer] { return std::make_shared<GPTBlockLayer>(config, layer); },
         .state_prefix = fmt::format("h.{}.", layer)});
  }
  specs.push_back({.type_name = "LayerNorm",
                   .build =
                       [config] {
                         return std::make_shared<nn::LayerNorm>(Shape{config.n_embd},
                                                                config.norm_eps);
                       },
                   .state_prefix = "ln_f."});
  specs.push_back(
      {.type_name = "LMHead",
       .build =
           [config] { return std::make_shared<models::LMHead>(config.vocab_size, config.n_embd); },
       .tied_key = tied,
       .tied_parameter = "weight",
       .state_prefix = "lm_head."});
  return specs;
}

Tensor gpt_next_token_loss(const Tensor& logits, const Tensor& targets) {
  const int64_t rows = logits.numel() / logits.size(-1);
  return cross_entropy(logits.to(DType::f32).reshape({rows, logits.size(-1)}),
                       targets.reshape({rows}));
}

}  // namespace zt::pipeline
