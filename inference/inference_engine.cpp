// The engine's set-up (dtype cast, quantization; a tensor-parallel model in fp32), its KV cache
// and the checks of each request; generation itself is in continuous_batching.cpp.
#include "inference/inference_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "inference/paged_kv_cache.h"
#include "quant/quantize_model.h"

namespace zt::inference {

namespace {

// quant names every layer it cannot quantize, one line each; the engine reports the first and
// how many more, so that a bad q_groups is one line, not one per layer.
void quantize(models::GPT& model, const quant::QuantizationConfig& config) {
  try {
    quant::quantize_linear_layers(model, config);
  } catch (const std::invalid_argument& error) {
    const std::string text = error.what();
    const size_t lines = size_t(std::count(text.begin(), text.end(), '\n'));
    if (lines == 0) throw std::invalid_argument("init_inference: " + text);
    throw std::invalid_argument(fmt::format("init_inference: {} (and {} more like it)",
                                            text.substr(0, text.find('\n')), lines));
  }
}

}  // namespace

InferenceEngine::InferenceEngine(std::shared_ptr<models::GPT> model, const InferenceConfig& config)
    : model_(std::move(model)), config_(config) {
  if (!model_) throw std::invalid_argument("init_inference: no model");
  if (config_.tp_size > 1) {
    throw std::invalid_argument(
        fmt::format("init_inference: tensor_parallel.tp_size {}: a whole model is served on one "
                    "rank; tp_size > 1 serves a TensorParallelGPT split over that many MPI ranks",
                    config_.tp_size));
  }
  served_ = model_.get();
  model_config_ = model_->config();
  model_->eval();
  if (config_.quantized()) {
    // Quantized layers take f32 activations: the rest of the model stays f32.
    if (config_.dtype == "fp16" || config_.dtype == "bf16") {
      throw std::invalid_argument(fmt::format(
          "init_inference: dtype {} with quant.enabled: quantized layers compute in f32; use "
          "dtype int8 (or fp32)",
          config_.dtype));
    }
    model_->to(DType::f32);
    quantize(*model_, config_.quant);
  } else {
    model_->to(config_.weight_dtype());
  }
  decoder_ = std::make_unique<RaggedDecoder>(*model_);
}

InferenceEngine::InferenceEngine(std::shared_ptr<tensor_parallel::TensorParallelGPT> model,
                                 const InferenceConfig& config)
    : tensor_parallel_model_(std::move(model)), config_(config) {
  if (!tensor_parallel_model_) throw std::invalid_argument("init_inference: no model");
  comm::Communicator& group = tensor_parallel_model_->group();
  if (config_.tp_size != group.size()) {
    throw std::invalid_argument(
        fmt::format("init_inference: tensor_parallel.tp_size {} but the model is split over {} "
                    "ranks",
                    config_.tp_size, group.size()));
  }
  if (config_.dtype != "fp32" || config_.quantized()) {
    throw std::invalid_argument(fmt::format(
        "init_inference: dtype {}{} at tensor_parallel.tp_size {}: tensor-parallel serving is "
        "fp32 only; use dtype fp32 without quant, or tp_size 1",
        config_.dtype, config_.quantized() ? " with quant" : "", config_.tp_size));
  }
  served_ = tensor_parallel_model_.get();
  model_config_ = tensor_parallel_model_->config();
  tensor_parallel_model_->eval();
  tensor_parallel_model_->to(DType::f32);
  decoder_ = std::make_unique<RaggedDecoder>(*served_, model_config_, &group);
}

models::GPT& InferenceEngine::model() {
  if (!model_) {
    throw std::logic_error("InferenceEngine::model: a tensor-parallel engine holds no whole model");
  }
  return *model_;
}

PagedKVCache InferenceEngine::make_cache() const {
  const int64_t ranks = config_.tp_size, positions = max_positions();
  PagedKVCacheShape cache_shape{.layers = model_config_.n_layer,
                                .kv_heads = model_config_.resolved_n_kv_head() / ranks,
                                .head_dim = model_config_.head_dim(),
                                .block_positions = config_.kv_block_positions};
  cache_shape.blocks = config_.max_batch_size *
                       ((positions + config_.kv_block_positions - 1) / config_.kv_block_positions);
  // The token embedding's dtype: the weights'. A quantized model computes in f32 on the CPU
  // (its embedding table, quantized too, is then no longer the nn::Embedding's).
  const Tensor weight = model_ ? model_->token_embedding()->weight : served_->parameters().at(0);
  if (!weight.defined()) return PagedKVCache(cache_shape, DType::f32, Device::cpu());
  const DType dtype = is_floating(weight.dtype()) ? weight.dtype() : DType::f32;
  return PagedKVCache(cache_shape, dtype, weight.device());
}

int64_t InferenceEngine::max_positions() const {
  return std::min(config_.max_out_tokens, model_config_.block_size);
}

int64_t InferenceEngine::weight_bytes() const {
  return int64_t(quant::model_weight_bytes(*served_).total());
}

void InferenceEngine::check_request(size_t index, const GenerationRequest& request) const {
  const int64_t prompt = int64_t(request.prompt.size()), limit = max_positions();
  const std::string limit_name =
      limit == model_config_.block_size ? "the model's context (block_size)" : "max_out_tokens";
  if (prompt == 0) {
    throw std::invalid_argument(fmt::format("request {}: the prompt is empty", index));
  }
  if (request.max_new_tokens < 1) {
    throw std::invalid_argument(
        fmt::format("request {}: max_new_tokens {}: expected >= 1", index, request.max_new_tokens));
  }
  for (int64_t token : request.prompt) {
    if (token < 0 || token >= model_config_.vocab_size) {
      throw std::invalid_argument(
          fmt::format("request {}: token {} is outside the model's vocabulary [0, {})", index,
                      token, model_config_.vocab_size));
    }
  }
  if (prompt + config_.min_out_tokens > limit) {
    throw std::invalid_argument(fmt::format(
        "request {}: a prompt of {} tokens leaves {} of the {} positions of {}, fewer than "
        "min_out_tokens {}",
        index, prompt, std::max<int64_t>(limit - prompt, 0), limit, limit_name,
        config_.min_out_tokens));
  }
  if (prompt + request.max_new_tokens > limit) {
    throw std::invalid_argument(fmt::format(
        "request {}: the prompt's {} tokens + max_new_tokens {} = {} pass the {} positions of {}",
        index, prompt, request.max_new_tokens, prompt + request.max_new_tokens, limit, limit_name));
  }
}

}  // namespace zt::inference
