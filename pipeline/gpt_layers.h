// The GPT (GPT-2 layout) as pipeline layer specs: the embeddings (wte + wpe, dropout), one spec
// per transformer block, the final LayerNorm and the LM head, tied to wte when the model ties
// them. Each layer's parameters carry the whole GPT's names under its spec's state_prefix, so a
// stage loads its part of a GPT built on one process (PipelineModule::load_from_whole_model).
#pragma once

#include "core/tensor.h"
#include "models/gpt_config.h"
#include "pipeline/layer_spec.h"

namespace zt::pipeline {

// Throws std::invalid_argument for the Llama layout (not built as pipeline layers yet) or a
// config that cannot make a model.
LayerSpecs gpt_layer_specs(const models::GPTConfig& config);

// The next-token loss of the last stage: cross entropy of logits [B, T, vocab] against
// targets i64 [B, T], averaged over the tokens (as gpt_train's).
Tensor gpt_next_token_loss(const Tensor& logits, const Tensor& targets);

}  // namespace zt::pipeline
