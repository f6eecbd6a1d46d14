// Post-training quantization of a model's linear layers (ZeroQuant): each nn::Linear and
// GPT-2 Conv1D (and the LM head when asked) is replaced in place by a QuantizedLinear holding
// packed codes; the embeddings (unless quantize_embeddings is false) by QuantizedEmbeddings, a
// head tied to them reading their codes; the norms stay f32. The model's
// own code is unchanged: its members still call the old layers, which hand every call to
// their replacements (nn::Module::replace_child), and the f32 weights are freed.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "nn/module.h"
#include "quant/quantization_config.h"

namespace zt::quant {

// What `config` cannot do on `model`, one line each naming the layer (q_groups that do not
// divide its rows, bits other than 4 or 8, ...); empty when it can.
std::vector<std::string> quantization_problems(nn::Module& model, const QuantizationConfig& config);

// Replaces the layers; throws std::invalid_argument carrying every problem (one per line)
// before touching anything. Does nothing when config.enabled or config.weight.enabled is
// false. Returns the dotted names of the layers it replaced.
std::vector<std::string> quantize_linear_layers(nn::Module& model,
                                                const QuantizationConfig& config);

// The bytes a model holds for its weights, each tied parameter once.
struct WeightBytes {
  size_t linear_weights = 0;  // the linear layers' matrices: f32 values, or codes + scales +
                              // zero points when quantized
  size_t linear_extras = 0;   // their biases, the W8A8 layers' per-row code sums, scales and
                              // zero points
  size_t embeddings = 0;      // the token and position tables: f32, or codes + row scales
  size_t other = 0;           // every other parameter and buffer (norms, an untied head)
  size_t total() const { return linear_weights + linear_extras + embeddings + other; }
};
WeightBytes model_weight_bytes(nn::Module& model);

}  // namespace zt::quant
