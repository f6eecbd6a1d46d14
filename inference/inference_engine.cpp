// The engine's set-up (tensor-parallel refusal, dtype cast, quantization) and the checks of
// each request; generation itself is in continuous_batching.cpp.
#include "inference/inference_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace zt::inference {

InferenceEngine::InferenceEngine(std::shared_ptr<models::GPT> model, const InferenceConfig& config)
    : model_(std::move(model)), config_(config) {
  if (!model_) throw std::invalid_argument("init_inference: no model");
  if (config_.tp_size > 1) {
    throw std::invalid_argument(fmt::format(
        "init_inference: tensor_parallel.tp_size {}: tensor-parallel serving is not available "
        "yet; use tp_size 1",
        config_.tp_size));
  }
  if (config_.quantized()) {
    throw std::invalid_argument(
        "init_inference: dtype int8 / quant.enabled: quantized serving is not available in this "
        "build; use fp32, fp16 or bf16");
  }
  model_->eval();
  model_->to(config_.weight_dtype());
  decoder_ = std::make_unique<RaggedDecoder>(*model_);
}

int64_t InferenceEngine::max_positions() const {
  return std::min(config_.max_out_tokens, model_->config().block_size);
}

int64_t InferenceEngine::weight_bytes() const {
  int64_t bytes = 0;
  // A tied head and embedding share one tensor: count each storage once.
  std::vector<const void*> seen;
  auto count = [&](const NamedTensors& tensors) {
    for (const auto& [name, tensor] : tensors) {
      const void* data = tensor.raw_data();
      if (std::find(seen.begin(), seen.end(), data) != seen.end()) continue;
      seen.push_back(data);
      bytes += int64_t(tensor.nbytes());
    }
  };
  count(model_->named_parameters());
  count(model_->named_buffers());
  return bytes;
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
