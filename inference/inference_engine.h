// The inference engine: a trained GPT (either layout) served for generation (zt::init_inference
// in apps/gpt_inference.h builds it from a model or a checkpoint). The engine casts
// the weights to the config's dtype (int8: quantizes its Linear layers), keeps each running
// sequence's keys and values in a paged KV cache, and runs continuous batching: at every step
// requests join the running batch (their whole prompt in one prefill) and finished ones leave
// it, their cache blocks freed at once. Each request draws its tokens greedily or with
// temperature / top-k / top-p from a generator of its own seed, so its tokens do not depend on
// which other requests share its steps.
// Tensor-parallel serving (tensor_parallel.tp_size > 1): the engine takes a TensorParallelGPT
// of tp_size ranks, every rank of its tensor group runs generate() with the same requests, and
// each rank's KV cache holds only its heads; the gathered logits make every rank draw the same
// tokens. fp32 only there (the other dtypes and quantization are refused at tp > 1).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "inference/inference_config.h"
#include "inference/ragged_decoder.h"
#include "inference/sampling.h"
#include "models/gpt.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"

namespace zt::inference {

struct GenerationRequest {
  std::vector<int64_t> prompt;  // token ids, at least one
  int64_t max_new_tokens = 16;
  SamplingOptions sampling{.temperature = 0.0};  // greedy unless set
  uint64_t seed = 0;
};

struct Completion {
  std::vector<int64_t> tokens;  // the new tokens only
};

// Called for every new token of request `request` (its index), in order; `last` on its final one.
using TokenCallback = std::function<void(size_t request, int64_t token, bool last)>;

enum class Batching {
  continuous,  // requests join and leave the running batch at every step
  // A padded-tensor engine's batches: up to max_batch_size requests start together, every one
  // steps until the batch's longest is done, and the next batch starts after that.
  static_batches,
};

class InferenceEngine {
 public:
  InferenceEngine(std::shared_ptr<models::GPT> model, const InferenceConfig& config);
  // Tensor-parallel serving: config.tp_size must be the model's tensor group size.
  InferenceEngine(std::shared_ptr<tensor_parallel::TensorParallelGPT> model,
                  const InferenceConfig& config);

  // The whole model (std::logic_error for a tensor-parallel engine, which holds none).
  models::GPT& model();
  const models::GPTConfig& model_config() const { return model_config_; }
  // Logits [sequences, vocab] of one ragged step (the whole vocabulary on every rank).
  RaggedDecoder& decoder() { return *decoder_; }
  // An empty paged KV cache for `max_batch_size` sequences of max_positions(), of this rank's
  // heads, in the weights' dtype.
  PagedKVCache make_cache() const;
  const InferenceConfig& config() const { return config_; }
  // The most positions (prompt + output) a sequence may hold: max_out_tokens, at most the
  // model's context.
  int64_t max_positions() const;
  // Bytes of every parameter and buffer as stored (quantized layers count their scales).
  int64_t weight_bytes() const;

  // Every request's new tokens. Each request is checked before any runs (std::invalid_argument,
  // one line naming the request).
  std::vector<Completion> generate(const std::vector<GenerationRequest>& requests,
                                   const TokenCallback& on_token = {},
                                   Batching batching = Batching::continuous);
  // Steps of the last generate() (one forward of the running batch each).
  int64_t last_steps() const { return last_steps_; }

 private:
  void check_request(size_t index, const GenerationRequest& request) const;

  std::shared_ptr<models::GPT> model_;  // null when tensor-parallel
  std::shared_ptr<tensor_parallel::TensorParallelGPT> tensor_parallel_model_;
  nn::Module* served_ = nullptr;  // whichever of the two is set
  models::GPTConfig model_config_;
  InferenceConfig config_;
  std::unique_ptr<RaggedDecoder> decoder_;
  int64_t last_steps_ = 0;
};

}  // namespace zt::inference
