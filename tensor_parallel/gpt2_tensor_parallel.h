// GPT-2 in tensor-parallel form (Megatron's layout) from the same GPTConfig as models::GPT and
// a tensor group, under the same parameter names, each rank holding only its shards:
//   wte                  VocabParallelEmbedding   rows of the vocabulary
//   wpe, ln_1, ln_2, ln_f                         replicated
//   h.N.attn.c_attn      ColumnParallelLinear     q, k, v of heads [r H/tp, (r+1) H/tp)
//   h.N.attn.c_proj      RowParallelLinear        the same heads' rows; bias replicated
//   h.N.mlp.c_fc         ColumnParallelLinear     columns of the MLP width
//   h.N.mlp.c_proj       RowParallelLinear        the matching rows; bias replicated
//   lm_head              tied to wte's shard: logits of this rank's vocabulary columns; untied,
//                        a ColumnParallelLinear [V/tp, C] with the same vocabulary rows
// Llama's layout (config.architecture llama) is built the same way from
// tensor_parallel/llama_tensor_parallel.h, under "model." and "lm_head".
// model(idx) maps i64 tokens [B, T] to this rank's logits [B, T, V/tp]; the loss is
// vocab_parallel_cross_entropy. Each layer costs two all-reduces of [B, T, n_embd] forward
// (after the attention and the MLP) and two backward (into c_attn and c_fc).
// Dropout (config.dropout): inside the tensor-parallel region (the attention weights of each
// rank's own heads) it draws from a generator seeded per tensor rank, as Megatron's model-
// parallel RNG tracker does; on the replicated hidden states (embeddings, residual branches
// after the row-parallel all-reduce) it draws from the default generator, which must be seeded
// alike on the ranks of a tensor group so that their replicas stay equal.
// Sequence parallelism (sequence_parallel = true, sequence_parallel.h): between the layers each
// rank holds tokens [r T/tp, (r+1) T/tp) of the hidden states; the norms, wpe and the residual
// dropout work on those (dropout with the mask the whole tensor would draw), the column layers
// all-gather them and the row layers reduce-scatter their sums; T must divide by tp.
#pragma once

#include <memory>

#include "comm/communicator.h"
#include "core/generator.h"
#include "models/causal_attention.h"
#include "models/gpt_config.h"
#include "nn/containers.h"
#include "nn/embedding.h"
#include "nn/layer_norm.h"
#include "nn/module.h"
#include "tensor_parallel/parallel_linear.h"
#include "tensor_parallel/tensor_rank_generator.h"
#include "tensor_parallel/vocab_parallel.h"

namespace zt::tensor_parallel {

// Throws std::invalid_argument naming the sizes when the tensor group's size does not divide
// n_head, n_kv_head, the vocabulary or the MLP width.
void check_tensor_parallel_config(const models::GPTConfig& config, int tensor_parallel_size);

// Dropout of hidden states outside the tensor-parallel region: from the default generator on
// the replicated states, or sequence_parallel_dropout on this rank's tokens.
Tensor hidden_dropout(const Tensor& x, double p, bool training, comm::Communicator& group,
                      bool sequence_parallel);
// GPT-2's wpe N(0, 0.02): nn::Embedding (looked up at positions), or with sequence_parallel the
// table that looks up this rank's positions of the tokens it is given.
std::shared_ptr<nn::Module> gpt2_position_embedding(const models::GPTConfig& config,
                                                    comm::Communicator& group,
                                                    bool sequence_parallel);

class TensorParallelGPT2Attention final : public nn::Module, public TensorRankGeneratorOwner {
 public:
  // `layer`: its index in the whole model (its dropout stream, attention_dropout_seed).
  TensorParallelGPT2Attention(const models::GPTConfig& config, comm::Communicator& group,
                              uint64_t dropout_seed, int64_t layer, bool sequence_parallel = false);
  std::string type_name() const override { return "TensorParallelGPT2Attention"; }
  Generator& tensor_rank_generator() override { return tensor_rank_generator_; }
  // This rank's heads' planes of the layout (null: dense attention).
  models::SparseAttentionPlan* sparse_plan() const { return sparse_.get(); }
  std::shared_ptr<ColumnParallelLinear> c_attn;
  std::shared_ptr<RowParallelLinear> c_proj;

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  int64_t local_heads_, local_width_;
  double dropout_;
  Generator tensor_rank_generator_;  // attention-weight dropout of this rank's heads
  comm::Communicator* group_;
  bool sequence_parallel_;
  std::shared_ptr<models::SparseAttentionPlan> sparse_;
};

class TensorParallelGPT2MLP final : public nn::Module {
 public:
  TensorParallelGPT2MLP(const models::GPTConfig& config, comm::Communicator& group,
                        bool sequence_parallel = false);
  std::string type_name() const override { return "TensorParallelGPT2MLP"; }
  std::shared_ptr<ColumnParallelLinear> c_fc;
  std::shared_ptr<RowParallelLinear> c_proj;

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  double dropout_;
  comm::Communicator* group_;
  bool sequence_parallel_;
};

class TensorParallelGPT2Block final : public nn::Module {
 public:
  TensorParallelGPT2Block(const models::GPTConfig& config, comm::Communicator& group,
                          uint64_t dropout_seed, int64_t layer, bool sequence_parallel = false);
  std::string type_name() const override { return "TensorParallelGPT2Block"; }
  std::shared_ptr<nn::Module> ln_1, ln_2;  // sequence-parallel ones with sequence_parallel
  std::shared_ptr<TensorParallelGPT2Attention> attn;
  std::shared_ptr<TensorParallelGPT2MLP> mlp;

 protected:
  Tensor forward(const Tensor& x) override;
};

// The tied head: logits of this rank's vocabulary columns from the replicated hidden states
// (with sequence_parallel: from this rank's tokens, all-gathered along the sequence).
class VocabParallelHead final : public nn::Module {
 public:
  VocabParallelHead(const Tensor& embedding_shard, comm::Communicator& group,
                    bool sequence_parallel = false);
  std::string type_name() const override { return "VocabParallelHead"; }
  Tensor weight;  // wte's shard, registered a second time (one parameter, two modules)

 protected:
  Tensor forward(const Tensor& hidden) override;

 private:
  comm::Communicator* group_;
  bool sequence_parallel_;
};

class TensorParallelGPT final : public nn::Module {
 public:
  // `dropout_seed`: the base of the per-tensor-rank attention dropout generators (Megatron adds
  // 2718 and the tensor rank to its seed; each layer adds its own stride too,
  // attention_dropout_seed); the same on every rank. `sequence_parallel`:
  // Megatron's sequence parallelism (above); forward then refuses a T that tp does not divide.
  TensorParallelGPT(const models::GPTConfig& config, comm::Communicator& group,
                    uint64_t dropout_seed = 1234, bool sequence_parallel = false);
  std::string type_name() const override { return "TensorParallelGPT"; }
  std::string extra_repr() const override;
  const models::GPTConfig& config() const { return config_; }
  comm::Communicator& group() const { return *group_; }
  bool sequence_parallel() const { return sequence_parallel_; }

 protected:
  // idx i64 [B, T] -> this rank's logits [B, T, V/tp].
  Tensor forward(const Tensor& idx) override;

 private:
  Tensor gpt2_hidden(const Tensor& idx);
  models::GPTConfig config_;
  comm::Communicator* group_;
  bool sequence_parallel_;
  // GPT-2's children (null for Llama).
  std::shared_ptr<VocabParallelEmbedding> wte_;
  std::shared_ptr<nn::Module> wpe_;  // nn::Embedding, or the sequence-parallel table
  std::shared_ptr<nn::ModuleList> h_;
  std::shared_ptr<nn::Module> ln_f_;
  std::shared_ptr<nn::Module> llama_;  // Llama's stack (null for GPT-2)
  std::shared_ptr<nn::Module> lm_head_;
};

}  // namespace zt::tensor_parallel
