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
// from the default generator. The attention and the MLP put their input into the tensor region
// once for their column layers (q, k, v; gate, up), so a layer costs two all-reduces of
// [B, T, C] each way, as GPT-2's. With sequence_parallel the hidden states between the layers
// are this rank's tokens (sequence_parallel.h): the norms run on them, the region's entry is an
// all-gather along the sequence and the row layer's sum a reduce-scatter.
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
#include "tensor_parallel/tensor_rank_generator.h"
#include "tensor_parallel/vocab_parallel.h"

namespace zt::tensor_parallel {

class TensorParallelLlamaAttention final : public nn::Module, public TensorRankGeneratorOwner {
 public:
  TensorParallelLlamaAttention(const models::GPTConfig& config, comm::Communicator& group,
                               uint64_t dropout_seed, int64_t layer,
                               bool sequence_parallel = false);
  std::string type_name() const override { return "TensorParallelLlamaAttention"; }
  Generator& tensor_rank_generator() override { return tensor_rank_generator_; }
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
  comm::Communicator* group_;
  bool sequence_parallel_;
  std::shared_ptr<models::SparseAttentionPlan> sparse_;
};

class TensorParallelLlamaMLP final : public nn::Module {
 public:
  TensorParallelLlamaMLP(const models::GPTConfig& config, comm::Communicator& group,
                         bool sequence_parallel = false);
  std::string type_name() const override { return "TensorParallelLlamaMLP"; }
  std::shared_ptr<ColumnParallelLinear> gate_proj, up_proj;
  std::shared_ptr<RowParallelLinear> down_proj;

 protected:
  Tensor forward(const Tensor& x) override;  // down(silu(gate(x)) * up(x))

 private:
  comm::Communicator* group_;
  bool sequence_parallel_;
};

class TensorParallelLlamaDecoderLayer final : public nn::Module {
 public:
  TensorParallelLlamaDecoderLayer(const models::GPTConfig& config, comm::Communicator& group,
                                  uint64_t dropout_seed, int64_t layer,
                                  bool sequence_parallel = false);
  std::string type_name() const override { return "TensorParallelLlamaDecoderLayer"; }
  std::shared_ptr<TensorParallelLlamaAttention> self_attn;
  std::shared_ptr<TensorParallelLlamaMLP> mlp;
  std::shared_ptr<nn::Module> input_layernorm, post_attention_layernorm;

 protected:
  // (x, cos, sin) -> y
  nn::TensorList forward_many(const nn::TensorList& inputs) override;

 private:
  double dropout_;
  comm::Communicator* group_;
  bool sequence_parallel_;
};

// "model": embed_tokens, layers, norm; idx [B, T] -> the normed hidden states [B, T, C]
// (this rank's tokens [B, T/tp, C] with sequence_parallel).
class TensorParallelLlamaModel final : public nn::Module {
 public:
  TensorParallelLlamaModel(const models::GPTConfig& config, comm::Communicator& group,
                           uint64_t dropout_seed, bool sequence_parallel = false);
  std::string type_name() const override { return "TensorParallelLlamaModel"; }
  std::shared_ptr<VocabParallelEmbedding> embed_tokens;
  std::shared_ptr<nn::ModuleList> layers;
  std::shared_ptr<nn::Module> norm;

 protected:
  Tensor forward(const Tensor& idx) override;

 private:
  models::GPTConfig config_;
};

}  // namespace zt::tensor_parallel
