// Perplexity: the model's own full-sequence forward (no cache) over each window, the loss in f32.
#include "inference/perplexity.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/factory.h"

namespace zt::inference {

double perplexity(models::GPT& model, std::span<const int64_t> tokens, int64_t context) {
  if (tokens.size() < 2) {
    throw std::invalid_argument(
        fmt::format("perplexity: {} tokens; at least two are needed", tokens.size()));
  }
  if (context < 1 || context > model.config().block_size) {
    throw std::invalid_argument(fmt::format("perplexity: context {}: expected 1..{} (block_size)",
                                            context, model.config().block_size));
  }
  NoGradGuard no_grad;
  // A quantized model's embedding table is no longer the nn::Embedding's; it runs on the CPU.
  const Tensor table = model.token_embedding()->weight;
  const Device device = table.defined() ? table.device() : Device::cpu();
  double loss_sum = 0.0;
  int64_t targets = 0;
  for (size_t start = 0; start + 1 < tokens.size(); start += size_t(context)) {
    const int64_t length = std::min<int64_t>(context, int64_t(tokens.size() - start) - 1);
    std::vector<int64_t> inputs(tokens.begin() + start, tokens.begin() + start + length);
    std::vector<int64_t> next(tokens.begin() + start + 1, tokens.begin() + start + 1 + length);
    const Tensor logits = model(from_int64(inputs, {1, length}).to(device));
    const Tensor loss = cross_entropy(logits.reshape({length, -1}).to(DType::f32),
                                      from_int64(next, {length}).to(device));
    loss_sum += loss.item() * double(length);
    targets += length;
  }
  return std::exp(loss_sum / double(targets));
}

}  // namespace zt::inference
