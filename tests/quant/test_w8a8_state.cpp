// A W8A8 layer holds its codes once, in the int8 GEMM's panel layout: its bytes equal that
// layout plus scales and per-row tables (a whole W8A8 GPT about 4x smaller than f32), its
// state dict still carries the codes row-major, and saving then loading into a layer holding
// other codes gives the same outputs (the per-row tables follow the loaded codes).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/cpu/cpu_int8_gemm.h"
#include "core/factory.h"
#include "models/gpt.h"
#include "quant/quantize_model.h"
#include "quant/quantized_linear.h"

using namespace zt;
using quant::QuantizationType;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("zt_w8a8_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

// Bytes a W8A8 layer [rows, cols] holds: panels, group scales (and zero points), per-row code
// sums, per-row scales when groups are neither one nor one a row, per-row zero points when
// asymmetric, bias.
size_t expected_w8a8_bytes(int64_t rows, int64_t cols, int64_t groups, bool asymmetric, bool bias) {
  size_t per_row = 4;  // code sum
  if (groups > 1 && groups < rows) per_row += 4;
  if (asymmetric) per_row += 4;
  if (bias) per_row += 4;
  return size_t(cpu::int8_gemm_packed_b_bytes(rows, cols)) + size_t(groups) * (asymmetric ? 8 : 4) +
         size_t(rows) * per_row;
}

models::GPTConfig small_gpt_config() {
  models::GPTConfig config;
  config.vocab_size = 64;
  config.block_size = 16;
  config.n_layer = 2;
  config.n_head = 4;
  config.n_embd = 256;
  return config;
}

}  // namespace

TEST_CASE("a W8A8 layer holds its codes once, packed: its bytes equal the formula") {
  Generator generator(11);
  // 130 rows: three 64-column panels, the last partial; 67 columns: a partial quad.
  Tensor weight = randn({130, 67}, {}, &generator), bias = randn({130}, {}, &generator);
  for (int64_t groups : {1, 10, 130})
    for (QuantizationType type : {QuantizationType::symmetric, QuantizationType::asymmetric}) {
      INFO("groups=" << groups << " type=" << int(type));
      quant::QuantizedLinear layer(weight, bias, 8, groups, type, QuantizationType::asymmetric);
      const bool asymmetric = type == QuantizationType::asymmetric;
      CHECK(layer.weight_bytes() == expected_w8a8_bytes(130, 67, groups, asymmetric, true));
      // No buffer holds the codes row-major: the buffers are the panels, scales, zero points
      // and bias.
      size_t buffer_bytes = 0;
      for (const auto& [name, buffer] : layer.named_buffers()) buffer_bytes += buffer.nbytes();
      CHECK(buffer_bytes == layer.matrix_bytes() + 130 * 4);
      // The state dict has them row-major, as a weight-only layer saves them.
      bool has_codes = false;
      for (const auto& [name, tensor] : layer.state_dict()) {
        CHECK(name != "weight_codes_packed");
        if (name != "weight_codes") continue;
        has_codes = tensor.dtype() == DType::i8 && tensor.sizes() == Shape{130, 67};
      }
      CHECK(has_codes);
    }
}

TEST_CASE("a W8A8 GPT is 3.9x smaller than f32 with scales counted; weight-only unchanged") {
  manual_seed(21);
  auto reference = std::make_shared<models::GPT>(small_gpt_config());
  const quant::WeightBytes f32 = quant::model_weight_bytes(*reference);
  for (bool w8a8 : {true, false}) {
    INFO("w8a8=" << w8a8);
    manual_seed(21);
    auto model = std::make_shared<models::GPT>(small_gpt_config());
    quant::QuantizationConfig config;
    config.activation.enabled = w8a8;
    quant::quantize_linear_layers(*model, config);
    const quant::WeightBytes bytes = quant::model_weight_bytes(*model);
    // Every Conv1D [in, out] of both blocks, as a QuantizedLinear [out, in] of one group.
    size_t linear_weights = 0, linear_extras = 0;
    for (auto [rows, cols] :
         {std::pair<int64_t, int64_t>{768, 256}, {256, 256}, {1024, 256}, {256, 1024}}) {
      const size_t codes =
          w8a8 ? size_t(cpu::int8_gemm_packed_b_bytes(rows, cols)) : size_t(rows * cols);
      linear_weights += 2 * (codes + 4);
      linear_extras += 2 * size_t(rows) * (w8a8 ? 8 : 4);  // bias (and the code sums)
    }
    CHECK(bytes.linear_weights == linear_weights);
    CHECK(bytes.linear_extras == linear_extras);
    const double ratio = double(f32.total()) / double(bytes.total());
    MESSAGE("f32 / int8 weight bytes (w8a8=" << w8a8 << "): " << ratio);
    CHECK(ratio > 3.9);
    CHECK(ratio < 4.0);
  }
}

TEST_CASE("a W8A8 GPT saved and loaded into another gives the same logits") {
  quant::QuantizationConfig config;
  config.activation.enabled = true;
  config.weight.q_groups = 4;
  config.weight.q_type = QuantizationType::asymmetric;
  models::GPTConfig shape = small_gpt_config();
  shape.n_embd = 64;
  manual_seed(31);
  auto saved = std::make_shared<models::GPT>(shape);
  manual_seed(32);  // other weights: other codes, scales, zero points and per-row tables
  auto loaded = std::make_shared<models::GPT>(shape);
  for (auto* model : {saved.get(), loaded.get()}) {
    model->eval();
    quant::quantize_linear_layers(*model, config);
  }
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < 2 * 11; ++i) ids.push_back((i * 13 + 3) % shape.vocab_size);
  const Tensor idx = from_int64(ids, {2, 11});
  const std::vector<double> expected = (*saved)(idx).to_vector();
  CHECK((*loaded)(idx).to_vector() != expected);
  const std::string path = temp_path("gpt.safetensors");
  saved->save(path);
  loaded->load(path);
  std::filesystem::remove(path);
  CHECK((*loaded)(idx).to_vector() == expected);
}
