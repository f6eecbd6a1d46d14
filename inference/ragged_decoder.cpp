// The ragged step: embeddings of every new token, then per layer the shared projections over
// all of them and attention per sequence, then the head on each sequence's last token.
#include "inference/ragged_decoder.h"

#include <fmt/format.h>

#include <stdexcept>
#include <string>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "inference/paged_attention.h"
#include "models/causal_attention.h"
#include "models/gpt2_block.h"
#include "models/llama_block.h"
#include "quant/quantized_linear.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/llama_tensor_parallel.h"
#include "tensor_parallel/tp_region.h"

namespace zt::inference {

namespace {

std::shared_ptr<nn::Module> child(nn::Module& module, const std::string& path) {
  for (auto& [name, found] : module.named_modules())
    if (name == path) return found;
  throw std::invalid_argument(fmt::format("inference: the model has no module \"{}\"", path));
}

models::SparseAttentionPlan* sparse_plan_of(nn::Module& attention) {
  if (auto* gpt2 = dynamic_cast<models::GPT2Attention*>(&attention)) return gpt2->sparse_plan();
  if (auto* llama = dynamic_cast<models::LlamaAttention*>(&attention)) return llama->sparse_plan();
  // Tensor-parallel layers hold the planes of their rank's heads.
  if (auto* gpt2 = dynamic_cast<tensor_parallel::TensorParallelGPT2Attention*>(&attention))
    return gpt2->sparse_plan();
  if (auto* llama = dynamic_cast<tensor_parallel::TensorParallelLlamaAttention*>(&attention))
    return llama->sparse_plan();
  throw std::invalid_argument(
      fmt::format("inference: sparse attention needs the model's own attention modules, got {}",
                  attention.type_name()));
}

}  // namespace

RaggedDecoder::RaggedDecoder(models::GPT& model) : RaggedDecoder(model, model.config(), nullptr) {}

RaggedDecoder::RaggedDecoder(nn::Module& model, const models::GPTConfig& config,
                             comm::Communicator* tensor_group)
    : config_(config),
      tensor_group_(tensor_group),
      tensor_ranks_(tensor_group ? tensor_group->size() : 1) {
  const bool gpt2 = config_.architecture == models::Architecture::gpt2;
  token_embedding_ = child(model, gpt2 ? "wte" : "model.embed_tokens");
  if (gpt2) position_embedding_ = child(model, "wpe");
  final_norm_ = child(model, gpt2 ? "ln_f" : "model.norm");
  lm_head_ = child(model, "lm_head");
  for (int64_t i = 0; i < config_.n_layer; ++i) {
    const std::string prefix = gpt2 ? fmt::format("h.{}.", i) : fmt::format("model.layers.{}.", i);
    Layer layer;
    if (gpt2) {
      layer.norm_1 = child(model, prefix + "ln_1");
      layer.qkv = child(model, prefix + "attn.c_attn");
      layer.out_proj = child(model, prefix + "attn.c_proj");
      layer.norm_2 = child(model, prefix + "ln_2");
    } else {
      layer.norm_1 = child(model, prefix + "input_layernorm");
      layer.q = child(model, prefix + "self_attn.q_proj");
      layer.k = child(model, prefix + "self_attn.k_proj");
      layer.v = child(model, prefix + "self_attn.v_proj");
      layer.out_proj = child(model, prefix + "self_attn.o_proj");
      layer.norm_2 = child(model, prefix + "post_attention_layernorm");
    }
    layer.mlp = child(model, prefix + "mlp");
    if (gpt2) {
      // A W8A8 first projection applies GPT-2's GELU in its GEMM's epilogue (fused_mlp).
      auto up =
          std::dynamic_pointer_cast<quant::QuantizedLinear>(child(model, prefix + "mlp.c_fc"));
      if (up && up->quantizes_activations()) {
        layer.fused_up = up;
        layer.down = child(model, prefix + "mlp.c_proj");
      }
    }
    // A model trained sparse is served with its layout: the prompt by the block-sparse kernel,
    // cached steps by the fused kernel under the layout's mask (models/causal_attention.h).
    if (config_.sparse_attention)
      layer.sparse = sparse_plan_of(*child(model, prefix + (gpt2 ? "attn" : "self_attn")));
    layers_.push_back(layer);
  }
}

Tensor RaggedDecoder::embedded(const std::vector<RaggedSequence>& batch,
                               const std::vector<int64_t>& starts, Device device) {
  std::vector<int64_t> tokens, positions;
  for (size_t s = 0; s < batch.size(); ++s) {
    tokens.insert(tokens.end(), batch[s].tokens.begin(), batch[s].tokens.end());
    for (size_t t = 0; t < batch[s].tokens.size(); ++t) positions.push_back(starts[s] + int64_t(t));
  }
  const int64_t count = int64_t(tokens.size());
  Tensor x = (*token_embedding_)(from_int64(tokens, {1, count}).to(device));
  if (position_embedding_)
    x = x + (*position_embedding_)(from_int64(positions, {count}).to(device));
  return x;
}

Tensor RaggedDecoder::attention(const Layer& layer, int64_t index, const Tensor& x,
                                const std::vector<RaggedSequence>& batch,
                                const std::vector<int64_t>& starts, PagedKVCache& cache) {
  // This rank's heads (all of them without a tensor group).
  const int64_t H = config_.n_head / tensor_ranks_,
                KV = config_.resolved_n_kv_head() / tensor_ranks_, D = config_.head_dim();
  Tensor q_all, k_all, v_all;
  if (layer.qkv) {
    std::vector<Tensor> qkv = split((*layer.qkv)(x), H * D, 2);
    q_all = qkv[0], k_all = qkv[1], v_all = qkv[2];
  } else {
    q_all = (*layer.q)(x), k_all = (*layer.k)(x), v_all = (*layer.v)(x);
  }
  std::vector<Tensor> outputs;
  int64_t offset = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    const int64_t T = int64_t(batch[s].tokens.size()), start = starts[s];
    auto heads = [&](const Tensor& all, int64_t count) {
      return all.narrow(1, offset, T).reshape({1, T, count, D}).transpose(1, 2);
    };
    Tensor q = heads(q_all, H), k = heads(k_all, KV), v = heads(v_all, KV);
    if (!position_embedding_) {
      auto [cos, sin] = rotary_tables(start, T, D, config_.rope_theta, options_of(q));
      q = rotary_embedding(q, cos, sin);
      k = rotary_embedding(k, cos, sin);
    }
    offset += T;
    if (start > 0 && !layer.sparse && cache_read_in_place_ && q.device().is_cpu()) {
      // After a prompt: the new keys join the cache, and attention reads every cached position
      // in its block, with no gathered copy (a prompt with nothing cached keeps the tiled
      // kernel below, which suits T x T; a sparse layout's mask is applied there too).
      cache.write(batch[s].cache_id, index, start, k.squeeze(0), v.squeeze(0));
      outputs.push_back(paged_attention(q, cache, batch[s].cache_id, index, start));
      continue;
    }
    auto [past_keys, past_values] = cache.read(batch[s].cache_id, index, start);
    cache.write(batch[s].cache_id, index, start, k.squeeze(0), v.squeeze(0));
    models::CausalAttentionResult attended =
        models::causal_self_attention(q, k, v, past_keys, past_values, 0.0, layer.sparse);
    outputs.push_back(attended.output.transpose(1, 2).reshape({1, T, H * D}));
  }
  return (*layer.out_proj)(outputs.size() == 1 ? outputs[0] : cat(outputs, 1));
}

Tensor RaggedDecoder::step(const std::vector<RaggedSequence>& batch, PagedKVCache& cache) {
  if (batch.empty()) throw std::invalid_argument("RaggedDecoder::step: an empty batch");
  NoGradGuard no_grad;
  std::vector<int64_t> starts, last_rows;
  int64_t rows = 0;
  for (const RaggedSequence& sequence : batch) {
    const int64_t T = int64_t(sequence.tokens.size()), past = cache.length(sequence.cache_id);
    if (T == 0) throw std::invalid_argument("RaggedDecoder::step: a sequence without new tokens");
    if (past + T > config_.block_size) {
      throw std::invalid_argument(fmt::format(
          "inference: a sequence of {} positions ({} cached + {} new) is longer than the "
          "model's context, block_size {}",
          past + T, past, T, config_.block_size));
    }
    for (int64_t token : sequence.tokens) {
      if (token < 0 || token >= config_.vocab_size) {
        throw std::out_of_range(fmt::format("inference: token {} is outside the vocabulary [0, {})",
                                            token, config_.vocab_size));
      }
    }
    rows += T;
    last_rows.push_back(rows - 1);
  }
  const Device device = final_norm_->parameters().at(0).device();
  for (const RaggedSequence& sequence : batch) {
    starts.push_back(cache.grow(sequence.cache_id, int64_t(sequence.tokens.size())));
  }
  Tensor x = embedded(batch, starts, device);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    x = x + attention(layer, int64_t(i), (*layer.norm_1)(x), batch, starts, cache);
    const Tensor normed = (*layer.norm_2)(x);
    // GPT-2's MLP is c_proj(gelu_tanh(c_fc(x))), with dropout that inference never applies.
    x = x + (layer.fused_up ? (*layer.down)(layer.fused_up->forward_gelu_tanh(normed))
                            : (*layer.mlp)(normed));
  }
  const Tensor last =
      index_select(x, 1, from_int64(last_rows, {int64_t(last_rows.size())}).to(device));
  const Tensor logits = (*lm_head_)((*final_norm_)(last)).squeeze(0);
  // A tensor-parallel head gives this rank's vocabulary columns; every rank samples from all.
  if (tensor_ranks_ > 1) return tensor_parallel::all_gathered_last_dim(logits, *tensor_group_);
  return logits;
}

}  // namespace zt::inference
