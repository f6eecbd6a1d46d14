// The GPT as pipeline layer specs of tensor-parallel layers: the embedding layer with a
// vocabulary-parallel wte, the split blocks, the replicated final norm and the vocabulary-
// parallel head, under the whole GPT's names so that a stage cuts its shards from a whole model.
// With sequence parallelism the activations between the layers, and so between the stages, are
// each tensor rank's tokens [B, T/tp, C].
#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "nn/embedding.h"
#include "nn/init.h"
#include "nn/layer_norm.h"
#include "pipeline/gpt_layers.h"
#include "pipeline/llama_tensor_parallel_layers.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/parallel_linear.h"
#include "tensor_parallel/sequence_parallel.h"
#include "tensor_parallel/sequence_parallel_layers.h"
#include "tensor_parallel/vocab_parallel.h"

namespace zt::pipeline {

namespace {

constexpr double kInitStd = 0.02;

// wte(idx) (this rank's vocabulary rows, summed over the tensor group) + wpe(positions), then
// dropout from the default generator: the hidden states are replicated over the group (with
// sequence parallelism: this rank's tokens of them, tensor_parallel/sequence_parallel.h).
class TensorParallelGPTEmbeddingLayer final : public nn::Module {
 public:
  TensorParallelGPTEmbeddingLayer(const models::GPTConfig& config, comm::Communicator& group,
                                  bool sequence_parallel)
      : dropout_(config.dropout),
        block_size_(config.block_size),
        group_(&group),
        sequence_parallel_(sequence_parallel) {
    wte_ = register_module(
        "wte", std::make_shared<tensor_parallel::VocabParallelEmbedding>(
                   config.vocab_size, config.n_embd, group, kInitStd, sequence_parallel));
    wpe_ = register_module(
        "wpe", tensor_parallel::gpt2_position_embedding(config, group, sequence_parallel));
  }
  std::string type_name() const override { return "GPTEmbedding"; }

 protected:
  Tensor forward(const Tensor& idx) override {
    if (!idx.defined() || idx.dtype() != DType::i64 || idx.dim() != 2 || idx.size(1) > block_size_)
      throw std::invalid_argument(
          fmt::format("GPTEmbedding: expected i64 token ids [batch, time <= {}], got {} {}",
                      block_size_, idx.defined() ? dtype_name(idx.dtype()) : "None",
                      idx.defined() ? shape_str(idx.sizes()) : ""));
    if (sequence_parallel_)
      tensor_parallel::check_sequence_parallel_length(idx.size(1), group_->size());
    // The sequence-parallel table looks up this rank's positions of the tokens itself.
    const Tensor positions =
        sequence_parallel_ ? idx : arange(0.0, double(idx.size(1)), 1.0, options_of(idx));
    return tensor_parallel::hidden_dropout((*wte_)(idx) + (*wpe_)(positions), dropout_,
                                           is_training(), *group_, sequence_parallel_);
  }

 private:
  double dropout_;
  int64_t block_size_;
  comm::Communicator* group_;
  bool sequence_parallel_;
  std::shared_ptr<tensor_parallel::VocabParallelEmbedding> wte_;
  std::shared_ptr<nn::Module> wpe_;
};

// The head's own copy of the tied wte shard [V/tp, C] (the pipeline keeps one copy per stage
// and sums their gradients), or an untied column-parallel head over the same vocabulary rows.
}  // namespace

std::shared_ptr<nn::Module> vocab_parallel_head(const models::GPTConfig& config,
                                                comm::Communicator& group, bool sequence_parallel) {
  if (!config.tie_word_embeddings)
    return std::make_shared<tensor_parallel::ColumnParallelLinear>(
        config.n_embd, config.vocab_size, group,
        tensor_parallel::ColumnParallelLinear::Options{.bias = false,
                                                       .init_std = kInitStd,
                                                       .weight_out_in = true,
                                                       .sequence_parallel = sequence_parallel});
  MemoryTagGuard as_param(MemoryTag::param);
  Tensor shard = empty({config.vocab_size / group.size(), config.n_embd});
  nn::init::normal_(shard, 0.0, kInitStd);
  return std::make_shared<tensor_parallel::VocabParallelHead>(shard, group, sequence_parallel);
}

// With sequence parallelism every layer hands on this rank's own tokens.
static LayerSpecs with_split_outputs(LayerSpecs specs, bool sequence_parallel) {
  for (LayerSpec& spec : specs) spec.output_split_over_tensor_group = sequence_parallel;
  return specs;
}

LayerSpecs gpt_layer_specs(const models::GPTConfig& config, comm::Communicator& tensor_group,
                           uint64_t dropout_seed, bool sequence_parallel) {
  tensor_parallel::check_tensor_parallel_config(config, tensor_group.size());
  if (config.architecture == models::Architecture::llama)
    return with_split_outputs(
        llama_tensor_parallel_layer_specs(config, tensor_group, dropout_seed, sequence_parallel),
        sequence_parallel);
  comm::Communicator* group = &tensor_group;
  const bool sp = sequence_parallel;
  const std::string tied = config.tie_word_embeddings ? "embedding" : "";
  LayerSpecs specs;
  specs.push_back({.type_name = "GPTEmbedding",
                   .build =
                       [config, group, sp] {
                         return std::make_shared<TensorParallelGPTEmbeddingLayer>(config, *group,
                                                                                  sp);
                       },
                   .tied_key = tied,
                   .tied_parameter = "wte.weight",
                   .state_prefix = ""});
  for (int64_t layer = 0; layer < config.n_layer; ++layer) {
    // The spec's type name is the unsplit block's, so that "type:REGEX" cuts alike at any tp.
    specs.push_back({.type_name = "GPT2Block",
                     .build =
                         [config, group, dropout_seed, layer, sp] {
                           return std::make_shared<tensor_parallel::TensorParallelGPT2Block>(
                               config, *group, dropout_seed, layer, sp);
                         },
                     .state_prefix = fmt::format("h.{}.", layer)});
  }
  specs.push_back({.type_name = "LayerNorm",
                   .build =
                       [config, group, sp] {
                         return tensor_parallel::make_layer_norm(config.n_embd, config.norm_eps,
                                                                 *group, sp);
                       },
                   .state_prefix = "ln_f."});
  specs.push_back({.type_name = "LMHead",
                   .build = [config, group, sp] { return vocab_parallel_head(config, *group, sp); },
                   .tied_key = tied,
                   .tied_parameter = "weight",
                   .state_prefix = "lm_head."});
  return with_split_outputs(std::move(specs), sp);
}

std::function<Tensor(const Tensor& logits, const Tensor& targets)> gpt_vocab_parallel_loss(
    comm::Communicator& tensor_group) {
  comm::Communicator* group = &tensor_group;
  return [group](const Tensor& logits, const Tensor& targets) {
    const int64_t rows = logits.numel() / logits.size(-1);
    return tensor_parallel::vocab_parallel_cross_entropy(
        logits.to(DType::f32).reshape({rows, logits.size(-1)}), targets.reshape({rows}), *group);
  };
}

}  // namespace zt::pipeline
