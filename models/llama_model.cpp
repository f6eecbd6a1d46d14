// Llama's decoder stack: embedding, layers with shared rotary tables, final RMSNorm.
#include "models/llama_model.h"

#include "autograd/functions.h"
#include "core/factory.h"
#include "models/layer_checkpointing.h"
#include "models/llama_block.h"
#include "nn/init.h"

namespace zt::models {

LlamaModel::LlamaModel(const GPTConfig& config) : config_(config) {
  embed_tokens = register_module("embed_tokens",
                                 std::make_shared<nn::Embedding>(config.vocab_size, config.n_embd));
  nn::init::normal_(embed_tokens->weight, 0.0, 0.02);
  layers = register_module("layers", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < config.n_layer; ++i)
    layers->push_back(std::make_shared<LlamaDecoderLayer>(config, i));
  norm =
      register_module("norm", std::make_shared<nn::RMSNorm>(Shape{config.n_embd}, config.norm_eps));
}

nn::TensorList LlamaModel::forward_many(const nn::TensorList& inputs) {
  const Tensor& idx = inputs.at(0);
  const int64_t past = inputs.size() > 1 && inputs[1].defined() ? inputs[1].size(2) : 0;
  Tensor x = (*embed_tokens)(idx);
  auto [cos, sin] =
      rotary_tables(past, idx.size(1), config_.head_dim(), config_.rope_theta, options_of(x));
  nn::TensorList outputs(1);
  for (size_t layer = 0; layer < layers->size(); ++layer) {
    const size_t cached = 1 + 2 * layer;
    Tensor past_keys = cached < inputs.size() ? inputs[cached] : Tensor();
    Tensor past_values = cached + 1 < inputs.size() ? inputs[cached + 1] : Tensor();
    nn::TensorList result =
        run_decoder_layer(*(*layers)[layer], nn::TensorList{x, cos, sin, past_keys, past_values},
                          gradient_checkpointing && is_training());
    x = result[0];
    outputs.push_back(result[1]);
    outputs.push_back(result[2]);
  }
  outputs[0] = (*norm)(x);
  return outputs;
}

}  // namespace zt::models
