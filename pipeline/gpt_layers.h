// The GPT (GPT-2 layout) as pipeline layer specs: the embeddings (wte + wpe, dropout), one spec
// per transformer block, the final LayerNorm and the LM head, tied to wte when the model ties
// them. Each layer's parameters carry the whole GPT's names under its spec's state_prefix, so a
// stage loads its part of a GPT built on one process (PipelineModule::load_from_whole_model).
// The tensor-parallel form builds the same layers from tensor_parallel/gpt2_tensor_parallel.h,
// each rank holding its shards, for (pipeline, tensor, data) grids.
#pragma once

#include <cstdint>
#include <functional>

#include "comm/communicator.h"
#include "core/tensor.h"
#include "models/gpt_config.h"
#include "pipeline/layer_spec.h"

namespace zt::pipeline {

// The Llama layout: the token embedding (model.embed_tokens), one spec per decoder layer
// (model.layers.N, each making the rotary tables of its positions), the final RMSNorm
// (model.norm) and the head, tied to the embedding when the model ties them.
// Throws std::invalid_argument for a config that cannot make a model.
LayerSpecs gpt_layer_specs(const models::GPTConfig& config);

// The same layers split across `tensor_group` (Megatron's layout, the names of the whole GPT):
// a vocabulary-parallel wte beside a replicated wpe, tensor-parallel blocks, a replicated
// ln_f and a head over this rank's vocabulary rows (tied: a copy of the wte shard, whose
// gradient the pipeline sums with the embedding's between the stages of the same tensor rank).
// The last stage's outputs are this rank's logits [B, T, V/tp]: use gpt_vocab_parallel_loss.
// `dropout_seed` seeds the per-tensor-rank attention dropout (the same on every rank).
// The Llama layout is split the same way (pipeline/llama_tensor_parallel_layers.h).
// `sequence_parallel`: Megatron's sequence parallelism (tensor_parallel/sequence_parallel.h);
// the activations between layers and stages are then each rank's tokens [B, T/tp, C].
// Throws std::invalid_argument naming the sizes when the group's size does not divide the
// heads, the vocabulary or the MLP width. The group must outlive the layers.
LayerSpecs gpt_layer_specs(const models::GPTConfig& config, comm::Communicator& tensor_group,
                           uint64_t dropout_seed = 1234, bool sequence_parallel = false);

// The next-token loss of the last stage: cross entropy of logits [B, T, vocab] against
// targets i64 [B, T], averaged over the tokens (as gpt_train's).
Tensor gpt_next_token_loss(const Tensor& logits, const Tensor& targets);
// The same loss from this rank's vocabulary columns [B, T, V/tp]
// (tensor_parallel::vocab_parallel_cross_entropy over `tensor_group`; the same on every rank),
// a pipeline::LossFunction.
std::function<Tensor(const Tensor& logits, const Tensor& targets)> gpt_vocab_parallel_loss(
    comm::Communicator& tensor_group);

}  // namespace zt::pipeline
