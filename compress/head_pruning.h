// Attention heads in the weights DeepSpeed's head pruning touches: the output projection reads
// the heads side by side (input feature h * D + d belongs to head h), so a head's mask scales
// a block of its input features; the q, k and v projections write them the same way (fused in
// GPT-2's c_attn: three blocks of H * D outputs). A Linear stores [out, in], GPT-2's Conv1D
// [in, out], so the input dim is 1 or 0.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/module.h"

namespace zt::compress {

// The dim of a weight that holds its input features: 0 for a Conv1D, 1 for a Linear.
int input_dim_of(const std::string& module_type);

// `weight` with the input features of head h scaled by head_mask[h] (in the graph).
Tensor mask_heads(const Tensor& weight, const Tensor& head_mask, int input_dim);

// One entry per feature of a dim of `features` = k * inner features (inner = heads * head
// size; k = 3 for a fused qkv): feature j follows head (j % inner) / (inner / heads). Throws
// std::invalid_argument naming `module` when the sizes do not fit.
std::vector<float> feature_mask_of_heads(const std::vector<float>& head_mask, int64_t features,
                                         int64_t inner, const std::string& module);

// Llama's grouped-query attention shares each key/value head among a group of query heads, so a
// query head cannot leave alone: head pruning there prunes whole groups, and `num_heads` must
// count the key/value heads (the heads, without grouping). Throws dist::ConfigError naming
// num_heads when a module of `head_pruned` (dotted names) sits in attention that has another
// number of key/value heads.
void check_grouped_heads(nn::Module& model, int64_t num_heads,
                         const std::vector<std::string>& head_pruned);

}  // namespace zt::compress
