// Llama's decoder stack in tensor-parallel form, under Hugging Face's names, each rank holding
// its shards (nn::Linear's [out, in] layout):
//   model.embed_tokens                VocabParallelEmbedding   vocabulary rows
//   self_attn.q_proj, k_proj, v_proj  ColumnParallelLinear     query heads [r H/tp, (r+1) H/tp)
//                                                              and key/value heads
//                                                              [r KV/tp, (r+1) KV/tp)
//   self_attn.o_proj                  RowParallelLinear        the query heads' input columns
//   mlp.gate_proj, up_proj            ColumnParallelLinear     the same columns of the width
//   mlp.down_proj                     RowParallelLinear        the matching input columns
//   input_layernorm, post_attention_layernorm, model.norm      replicated
// Query head h reads key head h / (H / KV) (grouped-query attention): with both split in
// contiguous blocks, rank r's query heads read exactly rank r's key/value heads.
// Dropout as in gpt2_tensor_parallel.h: attention weights per tensor rank, residual branches
// from the default generator.
#pragma once

#include <memory>

#include "comm/communicator.h"
#include "core/generator.h"
#include "models/causal_attention.h"
#include "models/gpt_config.h"
#include "nn/containers.h"
#include "nn/module.h"
#include "nn/rms_norm.h"
#include "tensor_parallel/parallel_linear.h"
#include "tensor_parallel/vocab_parallel.h"

namespace zt::tensor_parallel {

class TensorParallelLlamaAttention final : public nn::Module {
 public:
  TensorParallelLlamaAttention(const models::GPTConfig& config, comm::Communicator& group,
                               uint64_t dropout_seed);
  std::string type_name() const override { return "TensorParallelLlamaAttention"; }
  // This rank's query heads' planes of the layout (null: dense attention).
  models::SparseAttentionPlan* sparse_plan() const { return sparse_.get(); }
  std::shared_ptr<ColumnParallelLinear> q_proj, k_proj, v_proj;
  std::shared_ptr<RowParallelLinear> o_proj;

 protected:
  // (x, cos, sin) -> y
  nn::TensorList forward_many(const nn::TensorList& inputs) override;

 private:
  int64_t local_heads_, local_kv_heads_, head_dim_;
  double dropout_;
  Generator tensor_rank_generator_;
  std::shared_ptr<models::SparseAttentionPlan> sparse_;
};

class TensorParallelLlamaMLP final : public nn::Module {
 public:
  TensorParallelLlamaMLP(const models::GPTConfig& config, comm::Communicator& group);
  std::string type_name() const override { return "TensorParallelLlamaMLP"; }
  std::shared_ptr<ColumnParallelLinear> gate_proj, up_proj;
  std::shared_ptr<RowParallelLinear> down_proj;

 protected:
  Tensor forward(const Tensor& x) override;  // down(silu(gate(x)) * up(x))
};

class TensorParallelLlamaDecoderLayer final : public nn::Module {
 public:
  TensorParallelLlamaDecoderLayer(const models::GPTConfig& config, comm::Communicator& group,
                                  uint64_t dropout_seed);
  std::string type_name() const override { return "TensorParallelLlamaDecoderLayer"; }
  std::shared_ptr<TensorParallelLlamaAttention> self_attn;
  std::shared_ptr<TensorParallelLlamaMLP> mlp;
  std::shared_ptr<nn::RMSNorm> input_layernorm, post_attention_layernorm;

 protected:
  // (x, cos, sin) -> y
  nn::TensorList forward_many(const nn::TensorList& inputs) override;

 private:
  double dropout_;
};

// "model": embed_tokens, layers, norm; idx [B, T] -> the normed hidden states [B, T, C].
class TensorParallelLlamaModel final : public nn::Module {
 public:
  TensorParallelLlamaModel(const models::GPTConfig& config, comm::Communicator& group,
                           uint64_t dropout_seed);
  std::string type_name() const override { return "TensorParallelLlamaModel"; }
  std::shared_ptr<VocabParallelEmbedding> embed_tokens;
  std::shared_ptr<nn::ModuleList> layers;
  std::shared_ptr<nn::RMSNorm> norm;

 protected:
  Tensor forward(const Tensor& idx) override;

 private:
  models::GPTConfig config_;
};

}  // namespace zt::tensor_parallel
