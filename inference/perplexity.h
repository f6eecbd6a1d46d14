// Validation perplexity of a GPT over a token stream: exp of the mean next-token cross-entropy
// over consecutive windows of `context` targets (each window's first input is the previous
// window's last target), computed in f32 whatever dtype the model holds, so that dtypes compare
// on the same numbers.
#pragma once

#include <cstdint>
#include <span>

#include "models/gpt.h"

namespace zt::inference {

// Throws std::invalid_argument when `tokens` has fewer than two tokens or `context` is outside
// 1..block_size.
double perplexity(models::GPT& model, std::span<const int64_t> tokens, int64_t context);

}  // namespace zt::inference
