// One step of a GPT over a ragged batch: each sequence brings its own number of new tokens (a
// whole prompt when it joins, one token a step after that) and its own paged KV cache, so
// sequences of any lengths share a step. The new tokens of all sequences are stacked into one
// [1, N, C] activation for every projection and MLP (the GEMMs that batching makes cheaper);
// only attention runs per sequence, against that sequence's cached positions.
// The layers are looked up by their Hugging Face names when the decoder is built, so a model
// whose Linear layers were swapped for quantized ones runs the swapped ones, and a
// tensor-parallel GPT (tensor_parallel/, same names) runs with this rank's heads: its cache holds
// only those heads, and the logits of its vocabulary rows are gathered across the tensor group.
#pragma once

#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "inference/paged_kv_cache.h"
#include "models/causal_attention.h"
#include "models/gpt.h"
#include "nn/module.h"
#include "quant/quantized_linear.h"

namespace zt::inference {

struct RaggedSequence {
  int64_t cache_id = 0;         // the sequence in the PagedKVCache
  std::vector<int64_t> tokens;  // the new tokens (at least one)
};

class RaggedDecoder {
 public:
  explicit RaggedDecoder(models::GPT& model);
  // `model` built from `config` (a models::GPT, or a tensor-parallel GPT over `tensor_group`,
  // which every rank of the group then steps alike).
  RaggedDecoder(nn::Module& model, const models::GPTConfig& config,
                comm::Communicator* tensor_group);
  // Runs the new tokens of every sequence, appending their keys and values to `cache` (each
  // sequence grows by its token count); the logits of each sequence's last new token,
  // [sequences, vocab], in the model's dtype. Throws std::invalid_argument when a sequence
  // would pass the model's context.
  Tensor step(const std::vector<RaggedSequence>& batch, PagedKVCache& cache);
  // Whether attention after a prompt reads the paged cache in place (the default, f32, f16 or
  // bf16 on the CPU) or gathers a copy of the context first, as a prompt and a sparse layout
  // do: for comparing the two.
  void set_cache_read_in_place(bool in_place) { cache_read_in_place_ = in_place; }

 private:
  struct Layer {
    std::shared_ptr<nn::Module> norm_1, norm_2, mlp, out_proj;
    std::shared_ptr<nn::Module> qkv;      // GPT-2's c_attn (q, k, v side by side)
    std::shared_ptr<nn::Module> q, k, v;  // Llama's projections
    // GPT-2 with a W8A8 c_fc: the MLP run as its two projections, GELU fused into the first.
    std::shared_ptr<quant::QuantizedLinear> fused_up;
    std::shared_ptr<nn::Module> down;
    models::SparseAttentionPlan* sparse = nullptr;  // the layer's layout (owned by the model)
  };
  Tensor attention(const Layer& layer, int64_t index, const Tensor& x,
                   const std::vector<RaggedSequence>& batch, const std::vector<int64_t>& starts,
                   PagedKVCache& cache);
  Tensor embedded(const std::vector<RaggedSequence>& batch, const std::vector<int64_t>& starts,
                  Device device);

  models::GPTConfig config_;
  comm::Communicator* tensor_group_ = nullptr;  // null: the whole model on this rank
  int64_t tensor_ranks_ = 1;
  std::shared_ptr<nn::Module> token_embedding_, position_embedding_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  bool cache_read_in_place_ = true;
};

}  // namespace zt::inference
