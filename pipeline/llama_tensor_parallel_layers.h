// Llama as pipeline layer specs of tensor-parallel layers (Megatron's layout, under the whole
// model's names: model.embed_tokens, model.layers.N, model.norm, lm_head): the vocabulary-
// parallel token embedding, the split decoder layers of tensor_parallel/llama_tensor_parallel.h
// (each making the rotary tables of its positions), the replicated final RMSNorm and the head
// over this rank's vocabulary rows, tied to the embedding when the model ties them. So a
// stage cuts its shards from a whole Llama, and Llama trains on (pipeline, tensor, data) grids.
#pragma once

#include <cstdint>
#include <memory>

#include "comm/communicator.h"
#include "models/gpt_config.h"
#include "nn/module.h"
#include "pipeline/layer_spec.h"

namespace zt::pipeline {

// The specs of `config` (the Llama layout) split across `tensor_group`; `dropout_seed` and
// `sequence_parallel` as in gpt_layers.h's gpt_layer_specs, which calls this for Llama. The
// last stage's outputs are this rank's logits [B, T, V/tp]: use gpt_vocab_parallel_loss.
LayerSpecs llama_tensor_parallel_layer_specs(const models::GPTConfig& config,
                                             comm::Communicator& tensor_group,
                                             uint64_t dropout_seed, bool sequence_parallel);

// The head of both layouts over this rank's vocabulary rows: tied, its own copy of the
// embedding's shard [V/tp, C] (the pipeline sums the two copies' gradients); untied, a
// column-parallel layer. With sequence_parallel it all-gathers the rank's tokens first.
std::shared_ptr<nn::Module> vocab_parallel_head(const models::GPTConfig& config,
                                                comm::Communicator& group, bool sequence_parallel);

}  // namespace zt::pipeline
