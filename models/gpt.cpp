// GPT: building either layout and running it with or without a KV cache.
#include "models/gpt.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "core/factory.h"
#include "models/gpt2_block.h"
#include "models/layer_checkpointing.h"
#include "models/llama_model.h"
#include "nn/init.h"

namespace zt::models {

namespace {

// A token id outside the vocabulary, named with its place; CPU tokens only (a device's
// embedding kernel checks its own), a scan that costs nothing next to the model.
void check_token_ids(const Tensor& idx, int64_t vocab_size) {
  if (!idx.device().is_cpu()) return;
  const Tensor ids = idx.contiguous();
  const int64_t* data = ids.data_ptr<int64_t>();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    if (data[i] < 0 || data[i] >= vocab_size) {
      throw std::out_of_range(
          fmt::format("GPT: token {} at [{}, {}] is outside the vocabulary [0, {})", data[i],
                      i / idx.size(1), i % idx.size(1), vocab_size));
    }
  }
}

}  // namespace

GPT::GPT(const GPTConfig& config) : config_(config) {
  config.validate();
  if (config.architecture == Architecture::gpt2) {
    token_embedding_ =
        register_module("wte", std::make_shared<nn::Embedding>(config.vocab_size, config.n_embd));
    wpe_ =
        register_module("wpe", std::make_shared<nn::Embedding>(config.block_size, config.n_embd));
    nn::init::normal_(token_embedding_->weight, 0.0, 0.02);
    nn::init::normal_(wpe_->weight, 0.0, 0.02);
    h_ = register_module("h", std::make_shared<nn::ModuleList>());
    for (int64_t i = 0; i < config.n_layer; ++i)
      h_->push_back(std::make_shared<GPT2Block>(config, i));
    ln_f_ = register_module("ln_f",
                            std::make_shared<nn::LayerNorm>(Shape{config.n_embd}, config.norm_eps));
  } else {
    llama_ = register_module("model", std::make_shared<LlamaModel>(config));
    token_embedding_ = llama_->embed_tokens;
  }
  lm_head_ =
      register_module("lm_head", config.tie_word_embeddings
                                     ? std::make_shared<LMHead>(token_embedding_->weight)
                                     : std::make_shared<LMHead>(config.vocab_size, config.n_embd));
}

std::string GPT::extra_repr() const {
  return fmt::format(
      "{}, vocab_size={}, block_size={}, n_layer={}, n_head={}, n_kv_head={}, "
      "n_embd={}, tied={}",
      architecture_name(config_.architecture), config_.vocab_size, config_.block_size,
      config_.n_layer, config_.n_head, config_.resolved_n_kv_head(), config_.n_embd,
      config_.tie_word_embeddings);
}

void GPT::set_gradient_checkpointing(bool enabled) {
  gradient_checkpointing_ = enabled;
  if (llama_) llama_->gradient_checkpointing = enabled;
}

Tensor GPT::forward(const Tensor& idx, KVCache* cache) {
  if (cache == nullptr) return (*this)(idx);
  nn::TensorList inputs{idx};
  for (int64_t layer = 0; layer < config_.n_layer; ++layer) {
    const bool filled = size_t(layer) < cache->keys.size();
    inputs.push_back(filled ? cache->keys[size_t(layer)] : Tensor());
    inputs.push_back(filled ? cache->values[size_t(layer)] : Tensor());
  }
  nn::TensorList outputs = (*this)(inputs);
  cache->keys.assign(size_t(config_.n_layer), Tensor());
  cache->values.assign(size_t(config_.n_layer), Tensor());
  for (size_t layer = 0; layer < size_t(config_.n_layer); ++layer) {
    cache->keys[layer] = outputs[1 + 2 * layer];
    cache->values[layer] = outputs[2 + 2 * layer];
  }
  return outputs[0];
}

nn::TensorList GPT::forward_many(const nn::TensorList& inputs) {
  const size_t with_cache = 1 + 2 * size_t(config_.n_layer);
  if (inputs.size() != 1 && inputs.size() != with_cache) {
    throw std::invalid_argument(fmt::format(
        "GPT: takes (idx) or (idx, keys and values of each of its {} layers), got {} inputs",
        config_.n_layer, inputs.size()));
  }
  const Tensor& idx = inputs[0];
  if (!idx.defined() || idx.dtype() != DType::i64 || idx.dim() != 2) {
    throw std::invalid_argument(fmt::format(
        "GPT: idx must be i64 token ids [batch, time], got {}",
        idx.defined() ? fmt::format("{} {}", dtype_name(idx.dtype()), shape_str(idx.sizes()))
                      : "None"));
  }
  check_token_ids(idx, config_.vocab_size);
  const int64_t past = inputs.size() > 1 && inputs[1].defined() ? inputs[1].size(2) : 0;
  if (past + idx.size(1) > config_.block_size) {
    throw std::invalid_argument(fmt::format(
        "GPT: a sequence of {} positions ({} cached + {} new) is longer than the model's "
        "context, block_size {}",
        past + idx.size(1), past, idx.size(1), config_.block_size));
  }
  nn::TensorList outputs = llama_ ? (*llama_)(inputs) : gpt2_hidden(inputs, past);
  outputs[0] = (*lm_head_)(outputs[0]);
  if (inputs.size() == 1) outputs.resize(1);
  return outputs;
}

nn::TensorList GPT::gpt2_hidden(const nn::TensorList& inputs, int64_t past) {
  const Tensor& idx = inputs[0];
  const Tensor positions = arange(double(past), double(past + idx.size(1)), 1.0, options_of(idx));
  Tensor x = dropout((*token_embedding_)(idx) + (*wpe_)(positions), config_.dropout, is_training());
  nn::TensorList outputs(1);
  for (size_t layer = 0; layer < h_->size(); ++layer) {
    const size_t cached = 1 + 2 * layer;
    Tensor past_keys = cached < inputs.size() ? inputs[cached] : Tensor();
    Tensor past_values = cached + 1 < inputs.size() ? inputs[cached + 1] : Tensor();
    nn::TensorList result =
        run_decoder_layer(*(*h_)[layer], nn::TensorList{x, past_keys, past_values},
                          gradient_checkpointing_ && is_training());
    x = result[0];
    outputs.push_back(result[1]);
    outputs.push_back(result[2]);
  }
  outputs[0] = (*ln_f_)(x);
  return outputs;
}

}  // namespace zt::models
