// The engine's set-up (tensor-parallel refusal, dtype cast, quantization) and the checks of
// each request; generation itself is in continuous_batching.cpp.
#include "inference/inference_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

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
    throw std::invalid_argument(fmt::format(
        "init_inference: tensor_parallel.tp_size {}: tensor-parallel serving is not available "
        "yet; use tp_size 1",
        config_.tp_size));
  }
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

int64_t InferenceEngine::max_positions() const {
  return std::min(config_.max_out_tokens, model_->config().block_size);
}

int64_t InferenceEngine::weight_bytes() const {
  return int64_t(quant::model_weight_bytes(*model_).total());
}

void InferenceEngine::check_request(size_t index, const GenerationRequest& request) const {
  const int64_t prompt = int64_t(request.prompt.size()), limit = max_positions();
  const std::string limit_name =
      limit == model_->config().block_size ? "the model's context (block_size)" : "max_out_tokens";
  if (prompt == 0) {
    throw std::invalid_argument(fmt::format("request {}: the prompt is empty", index));
  }
  if (request.max_new_tokens < 1) {
    throw std::invalid_argument(
        fmt::format("request {}: max_new_tokens {}: expected >= 1", index, request.max_new_tokens));
  }
  for (int64_t token : request.prompt) {
    if (token < 0 || token >= model_->config().vocab_size) {
      throw std::invalid_argument(
          fmt::format("request {}: token {} is outside the model's vocabulary [0, {})", index,
                      token, model_->config().vocab_size));
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
