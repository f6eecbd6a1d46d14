// The learned mask scores of the "topk" pruning methods, as DeepSpeed's compression keeps them:
// a parameter beside the weight it prunes (sparse_pruning: one score a weight; head_pruning:
// one score a head), and the mask of the scores that rank in the kept fraction, applied with
// the straight-through estimator (forward the 0/1 mask, backward the mask's gradient to the
// scores unchanged), so that the scores learn which weights or heads to keep. The scores are
// parameters of the compressed module: added before zt::initialize, they are reduced,
// optimized and partitioned by ZeRO like the weights, and every rank computes the same mask.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dist/config_compression.h"
#include "nn/module.h"

namespace zt::compress {

inline constexpr const char* kSparseScoresName = "sparse_mask_scores";
inline constexpr const char* kHeadScoresName = "head_pruning_scores";
// row_pruning and channel_pruning with method "topk": one score an output row ([out, 1], a
// Linear) or output channel ([out, 1, 1, 1], a Conv2d), DeepSpeed's names and shapes.
inline constexpr const char* kRowScoresName = "row_mask_scores";
inline constexpr const char* kChannelScoresName = "channel_mask_scores";

// The name of the row or channel scores of a module of `type` ("Conv2d": channel scores).
const char* row_scores_name(const std::string& type);

// Adds the scores of every enabled topk technique (sparse_pruning with method "topk": the
// weight's shape; head_pruning: [num_heads]; row and channel pruning with method "topk": one a
// row or channel) to the modules its groups select, initialised as
// DeepSpeed does (kaiming uniform, a = sqrt(5)) from `seed`, the same on every rank. Call it
// before zt::initialize and before building the Compressor. Returns how many were added.
// Throws dist::ConfigError naming the key when a group's pattern selects no module.
int64_t add_mask_scores(nn::Module& model, const dist::CompressionConfig& config,
                        uint64_t seed = 0);

// 1 for the kept_count(size, dense_ratio) largest scores, ties to the lower index.
std::vector<float> topk_mask(std::span<const float> scores, double dense_ratio);

// topk_mask(scores) as a tensor of the scores' shape, dtype and device, whose gradient flows
// to `scores` unchanged.
Tensor topk_binarize(const Tensor& scores, double dense_ratio);

// Whether a state dict entry is learned mask scores (training state, not part of the model).
bool is_mask_scores(const std::string& name);
// Mask scores, or a static activation range (compress/activation_range.h): the compressor's
// state in a state dict, which the cleaned and the dense model do not have.
bool is_compression_state(const std::string& name);

// The module's parameter called `name` (not its children's); undefined when it has none.
Tensor own_parameter(nn::Module& module, const std::string& name);

}  // namespace zt::compress
