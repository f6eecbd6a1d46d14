// quantize_linear_layers on both GPT layouts: the right layers are replaced (and their f32
// weights freed), the model runs unchanged through its own members and its KV cache, its
// logits equal those of an f32 model holding the dequantized weights, weight bytes shrink as
// the codes say, and a config the model cannot honour is refused one line per problem.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "core/factory.h"
#include "models/conv1d.h"
#include "models/gpt.h"
#include "nn/linear.h"
#include "quant/quantize_model.h"
#include "quant/quantized_embedding.h"
#include "quant/quantized_linear.h"
#include "tests/largest_difference.h"

using namespace zt;
using namespace zt::models;

namespace {

GPTConfig tiny_config(Architecture architecture) {
  GPTConfig config;
  config.architecture = architecture;
  config.vocab_size = 37;
  config.block_size = 16;
  config.n_layer = 2;
  config.n_head = 4;
  config.n_embd = 32;
  config.bias = architecture == Architecture::gpt2;
  return config;
}

std::shared_ptr<GPT> tiny_gpt(Architecture architecture, uint64_t seed) {
  manual_seed(seed);
  auto model = std::make_shared<GPT>(tiny_config(architecture));
  model->eval();
  return model;
}

Tensor tokens(int64_t batch, int64_t length) {
  std::vector<int64_t> values(size_t(batch * length));
  for (size_t i = 0; i < values.size(); ++i) values[i] = int64_t((i * 7 + 5) % 37);
  return from_int64(values, {batch, length});
}

using zt::testing::largest_relative_difference;

// The linear layers only: the embeddings' own test below turns quantize_embeddings back on.
quant::QuantizationConfig weight_only(int bits, int64_t groups) {
  quant::QuantizationConfig config;
  config.weight.num_bits = bits;
  config.weight.q_groups = groups;
  config.quantize_embeddings = false;
  return config;
}

}  // namespace

TEST_CASE(
    "quantize_linear_layers replaces every Linear and Conv1D but the head, and frees their f32 "
    "weights") {
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama}) {
    auto model = tiny_gpt(architecture, 1);
    std::vector<std::shared_ptr<nn::Module>> originals;
    size_t linear_count = 0;
    for (const auto& [name, module] : model->named_modules()) {
      if (dynamic_cast<nn::Linear*>(module.get()) || dynamic_cast<Conv1D*>(module.get())) {
        ++linear_count;
        originals.push_back(module);
      }
    }
    std::vector<std::string> replaced = quant::quantize_linear_layers(*model, weight_only(8, 1));
    CHECK(replaced.size() == linear_count);
    CHECK(linear_count == (architecture == Architecture::gpt2 ? 8u : 14u));
    size_t quantized_count = 0;
    for (const auto& [name, module] : model->named_modules()) {
      CHECK_FALSE(dynamic_cast<nn::Linear*>(module.get()));
      CHECK_FALSE(dynamic_cast<Conv1D*>(module.get()));
      if (dynamic_cast<quant::QuantizedLinear*>(module.get())) ++quantized_count;
    }
    CHECK(quantized_count == linear_count);
    for (const auto& original : originals) CHECK(original->named_parameters().empty());
    auto* first = dynamic_cast<nn::Linear*>(originals.front().get());
    if (first) CHECK_FALSE(first->weight.defined());
    CHECK(model->lm_head()->weight.defined());
    bool has_codes = false;
    for (const auto& [name, tensor] : model->state_dict())
      has_codes |= name == replaced.front() + ".weight_codes" && tensor.dtype() == DType::i8;
    CHECK(has_codes);
  }
}

// The state dict of `reference` with each quantized layer's weight replaced by its
// dequantized values (transposed back for GPT-2's Conv1D layout).
NamedTensors with_dequantized_weights(GPT& reference, GPT& quantized) {
  NamedTensors state = reference.state_dict();
  for (const auto& [name, module] : quantized.named_modules()) {
    auto* layer = dynamic_cast<quant::QuantizedLinear*>(module.get());
    auto* table = dynamic_cast<quant::QuantizedEmbedding*>(module.get());
    if (!layer && !table) continue;
    Tensor dequantized =
        quant::dequantize_weight(layer ? layer->quantized_weight() : table->quantized_weight());
    for (auto& [state_name, tensor] : state) {
      if (state_name != name + ".weight") continue;
      // GPT-2's Conv1D layout is [in, out]; its head and tables are not Conv1D.
      bool conv1d_layout =
          reference.config().architecture == Architecture::gpt2 && !table && name != "lm_head";
      tensor = conv1d_layout ? dequantized.t().contiguous() : dequantized;
    }
  }
  return state;
}

TEST_CASE(
    "a weight-only quantized GPT's logits equal an f32 GPT's holding the dequantized weights") {
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama})
    for (int bits : {8, 4}) {
      INFO("architecture=" << architecture_name(architecture) << " bits=" << bits);
      auto quantized = tiny_gpt(architecture, 2);
      auto reference = tiny_gpt(architecture, 2);
      Tensor f32_logits = (*reference)(tokens(2, 9));
      quant::quantize_linear_layers(*quantized, weight_only(bits, 4));
      reference->load_state_dict(with_dequantized_weights(*reference, *quantized));
      Tensor idx = tokens(2, 9);
      Tensor logits = (*quantized)(idx);
      CHECK(largest_relative_difference(logits, (*reference)(idx)) < 1e-5);
      CHECK(largest_relative_difference(logits, f32_logits) < (bits == 8 ? 0.02 : 0.3));
      // Through the KV cache, a prompt then one token at a time: the same logits.
      KVCache cache;
      Tensor prompt = quantized->forward(idx.narrow(1, 0, 5), &cache);
      Tensor next = quantized->forward(idx.narrow(1, 5, 1), &cache);
      CHECK(largest_relative_difference(next, logits.narrow(1, 5, 1)) < 1e-5);
      CHECK(largest_relative_difference(prompt, logits.narrow(1, 0, 5)) < 1e-5);
    }
}

TEST_CASE("a W8A8 GPT's logits stay within 3% of the f32 GPT's") {
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama}) {
    auto quantized = tiny_gpt(architecture, 3);
    auto reference = tiny_gpt(architecture, 3);
    quant::QuantizationConfig config = weight_only(8, 4);
    config.activation.enabled = true;
    quant::quantize_linear_layers(*quantized, config);
    Tensor idx = tokens(2, 9);
    double difference = largest_relative_difference((*quantized)(idx), (*reference)(idx));
    CHECK(difference > 0);  // the activations really were quantized
    CHECK(difference < 0.03);
  }
}

TEST_CASE(
    "weight bytes: int8 codes are a quarter of the f32 weights and int4 an eighth, scales "
    "counted") {
  auto model = tiny_gpt(Architecture::gpt2, 4);
  quant::WeightBytes f32 = quant::model_weight_bytes(*model);
  // 2 layers of c_attn [32, 96], c_proj [32, 32], c_fc [32, 128], mlp.c_proj [128, 32].
  size_t matrix_elements = 2 * (32 * 96 + 32 * 32 + 32 * 128 + 128 * 32);
  CHECK(f32.linear_weights == 4 * matrix_elements);
  CHECK(f32.linear_extras == 4 * 2 * (96 + 32 + 128 + 32));  // biases
  for (int bits : {8, 4}) {
    auto quantized = tiny_gpt(Architecture::gpt2, 4);
    quant::quantize_linear_layers(*quantized, weight_only(bits, 2));
    quant::WeightBytes bytes = quant::model_weight_bytes(*quantized);
    size_t scales = 8 * 2 * 4;  // 8 layers, 2 groups, f32
    CHECK(bytes.linear_weights == matrix_elements * size_t(bits) / 8 + scales);
    CHECK(bytes.linear_extras == f32.linear_extras);
    CHECK(bytes.other == f32.other);
    double ratio = double(f32.linear_weights) / double(bytes.linear_weights);
    CHECK(ratio > (bits == 8 ? 3.95 : 7.8));
  }
}

TEST_CASE("a quantization config the model cannot honour is refused with one line per problem") {
  auto model = tiny_gpt(Architecture::gpt2, 5);
  quant::QuantizationConfig config = weight_only(8, 5);
  std::vector<std::string> problems = quant::quantization_problems(*model, config);
  REQUIRE(problems.size() == 8);  // every layer: 5 divides none of 96, 32, 128
  CHECK(problems[0] ==
        "quant.weight.q_groups: 5 groups do not divide the 96 rows of h.0.attn.c_attn (weight "
        "[96, 32])");
  CHECK_THROWS_WITH_AS(quant::quantize_linear_layers(*model, config),
                       doctest::Contains("h.1.mlp.c_proj"), std::invalid_argument);
  CHECK(quant::quantization_problems(*model, weight_only(3, 1)) ==
        std::vector<std::string>{"quant.weight.num_bits: expected 4 or 8, got 3"});
  // Nothing was replaced by the refused calls.
  for (const auto& [name, module] : model->named_modules())
    CHECK_FALSE(dynamic_cast<quant::QuantizedLinear*>(module.get()));
}

TEST_CASE("the quant block reads DeepSpeed's names and names each bad key") {
  nlohmann::json block = nlohmann::json::parse(R"({"enabled": true,
      "weight": {"num_bits": 4, "q_groups": 8, "q_type": "asymmetric"},
      "activation": {"enabled": false}, "qkv": {"enabled": false}})");
  quant::QuantizationConfig config = quant::quantization_config_from_json(block);
  CHECK(config.weight.num_bits == 4);
  CHECK(config.weight.q_groups == 8);
  CHECK(config.weight.q_type == quant::QuantizationType::asymmetric);
  CHECK_FALSE(config.qkv);
  nlohmann::json bad = nlohmann::json::parse(R"({"weight": {"num_bits": 3, "q_type": "odd",
      "bits": 8}, "activation": {"enabled": true, "q_groups": 2}})");
  CHECK_THROWS_WITH_AS(quant::quantization_config_from_json(bad),
                       "quant.weight.bits: unknown key (expected one of enabled, num_bits, "
                       "q_groups, q_type)\n"
                       "quant.weight.q_type: expected \"symmetric\" or \"asymmetric\", got \"odd\"",
                       std::invalid_argument);
  nlohmann::json w4a8 = nlohmann::json::parse(R"({"weight": {"num_bits": 4},
      "activation": {"enabled": true, "q_groups": 2}})");
  CHECK_THROWS_WITH_AS(quant::quantization_config_from_json(w4a8),
                       "quant.activation.q_groups: activations are quantized per token; "
                       "expected 1, got 2\n"
                       "quant.activation.enabled: int8 activations (W8A8) need weight.num_bits "
                       "8, got 4",
                       std::invalid_argument);
}

TEST_CASE(
    "qkv.enabled false keeps the attention's q, k, v projections in f32; quantize_head takes the "
    "head") {
  auto model = tiny_gpt(Architecture::llama, 6);
  quant::QuantizationConfig config = weight_only(8, 1);
  config.qkv = false;
  config.quantize_head = true;
  std::vector<std::string> replaced = quant::quantize_linear_layers(*model, config);
  CHECK(replaced.size() == 2 * 4 + 1);  // o, gate, up, down per layer, and the head
  CHECK(replaced.back() == "lm_head");
  for (const std::string& name : replaced) CHECK(name.find("q_proj") == std::string::npos);
  Tensor logits = (*model)(tokens(1, 4));
  CHECK(logits.sizes() == Shape{1, 4, 37});
}

// quantize_embeddings: the token and position tables become codes with a scale per row and the
// tied head reads the token table's codes, so no f32 matrix is left: the model's logits are an
// f32 GPT's holding the dequantized tables and weights, and its weight bytes shrink about 4x
// (int8) and 8x (int4) with every scale counted (a model without biases: only the norms stay
// f32).
TEST_CASE("quantize_embeddings: tables to codes, the tied head shares them; whole model 4x / 8x") {
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama})
    for (int bits : {8, 4}) {
      INFO("architecture=" << architecture_name(architecture) << " bits=" << bits);
      GPTConfig config = tiny_config(architecture);
      config.n_embd = 128;
      config.bias = false;
      manual_seed(8);
      auto quantized = std::make_shared<GPT>(config);
      manual_seed(8);
      auto reference = std::make_shared<GPT>(config);
      quantized->eval();
      reference->eval();
      const quant::WeightBytes f32 = quant::model_weight_bytes(*reference);
      quant::QuantizationConfig quantization = weight_only(bits, 1);
      quantization.quantize_embeddings = true;
      std::vector<std::string> replaced = quant::quantize_linear_layers(*quantized, quantization);
      std::shared_ptr<quant::QuantizedEmbedding> table;
      std::shared_ptr<quant::QuantizedLinear> head;
      for (const auto& [name, module] : quantized->named_modules()) {
        if (name == "wte" || name == "model.embed_tokens")
          table = std::dynamic_pointer_cast<quant::QuantizedEmbedding>(module);
        if (name == "lm_head") head = std::dynamic_pointer_cast<quant::QuantizedLinear>(module);
        CHECK_FALSE(dynamic_cast<nn::Embedding*>(module.get()));
      }
      REQUIRE(table);
      REQUIRE(head);
      CHECK(head->quantized_weight().codes.impl() == table->quantized_weight().codes.impl());
      CHECK(table->quantized_weight().groups == config.vocab_size);  // a scale per row
      CHECK_FALSE(quantized->token_embedding()->weight.defined());   // the f32 table is freed
      reference->load_state_dict(with_dequantized_weights(*reference, *quantized));
      Tensor idx = tokens(2, 9);
      CHECK(largest_relative_difference((*quantized)(idx), (*reference)(idx)) < 1e-5);
      const quant::WeightBytes bytes = quant::model_weight_bytes(*quantized);
      CHECK(bytes.embeddings ==
            table->quantized_weight().nbytes() + (architecture == Architecture::gpt2
                                                      ? size_t(16 * 128 * bits / 8 + 16 * 4)  // wpe
                                                      : 0));
      const double ratio = double(f32.total()) / double(bytes.total());
      CHECK(ratio > (bits == 8 ? 3.9 : 7.5));
      CHECK(ratio < (bits == 8 ? 4.0 : 8.0));
    }
}
