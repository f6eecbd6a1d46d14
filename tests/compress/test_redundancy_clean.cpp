// redundancy_clean against the compressed model it comes from: channels, rows and their related
// inputs removed and weights stored packed, the cleaned file loads into a smaller model whose
// outputs equal the masked, quantized model's; packing round-trips int8 and int4 codes.
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "compress/compressor.h"
#include "compress/packed_weights.h"
#include "compress/quantizer.h"
#include "compress/redundancy_clean.h"
#include "core/factory.h"
#include "core/generator.h"
#include "nn/nn.h"
#include "tests/compress/compress_test_models.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::compress;

namespace {

using testing::ConvNet;
using testing::max_difference;

const Tensor& tensor_named(const NamedTensors& tensors, const std::string& name) {
  for (const auto& [key, tensor] : tensors)
    if (key == name) return tensor;
  FAIL("no tensor " << name);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("packed weights: int8 and int4 codes round-trip, off-grid values are refused") {
  std::vector<float> values = {-1, 0.5f, 0.25f, 1, 0.125f, -0.5f};
  std::vector<float> quantized = values;
  fake_quantize(quantized, {.bits = 4, .groups = 2});
  std::vector<float> scales;
  std::vector<int32_t> zero_codes;
  for (int group = 0; group < 2; ++group) {
    std::span<const float> group_values(values.data() + group * 3, 3);
    // The grid is that of the unquantized group, as the quantizer used.
    scales.push_back(grid_of(group_values, 4, true).scale);
    zero_codes.push_back(0);
  }
  PackedWeight packed = pack_weight(quantized, {2, 3}, 4, true, scales, zero_codes);
  CHECK(packed.bits == 4);
  CHECK(packed.codes.size() == 3);  // 6 codes of 4 bits
  CHECK(unpack_weight(packed) == quantized);

  std::vector<float> asymmetric = {0, 0.7f, 1.4f, 2};
  fake_quantize(asymmetric, {.bits = 8, .symmetric = false});
  GroupGrid grid = grid_of(std::vector<float>{0, 0.7f, 1.4f, 2}, 8, false);
  PackedWeight packed8 = pack_weight(asymmetric, {1, 4}, 8, false, {grid.scale}, {grid.zero_code});
  CHECK(packed8.codes.size() == 4);
  CHECK(unpack_weight(packed8) == asymmetric);
  CHECK_THROWS_WITH_AS(pack_weight({0.3f, 1.0f}, {1, 2}, 8, true, {0.25f}, {0}),
                       doctest::Contains("not on its row's 8-bit grid"), std::invalid_argument);
}

TEST_CASE("redundancy_clean: the cleaned, smaller model computes what the compressed one did") {
  manual_seed(21);
  auto model = std::make_shared<ConvNet>(4, 8);
  dist::CompressionConfig config = testing::parse(testing::with_batch(R"("compression_training": {
    "channel_pruning": {"shared_parameters": {"enabled": true, "schedule_offset": 0},
      "different_groups": {"cp": {"params": {"dense_ratio": 0.5}, "modules": ["conv"],
                                  "related_modules": [["fc1"]]}}},
    "row_pruning": {"shared_parameters": {"enabled": true, "schedule_offset": 0},
      "different_groups": {"rp": {"params": {"dense_ratio": 0.25}, "modules": ["fc1"],
                                  "related_modules": [["fc2"]]}}},
    "sparse_pruning": {"shared_parameters": {"enabled": true, "schedule_offset": 0},
      "different_groups": {"sp": {"params": {"dense_ratio": 0.5}, "modules": ["fc1"]}}},
    "weight_quantization": {"shared_parameters": {"enabled": true, "quantize_groups": 2},
      "different_groups": {"w8": {"params": {"start_bits": 8, "target_bits": 8},
                                  "modules": ["fc1"]},
                           "w4": {"params": {"start_bits": 4, "target_bits": 4},
                                  "modules": ["conv"]}}}})"))
                                       .compression_training;
  Compressor compressor(*model, config, [] { return int64_t(5); });
  Tensor images = randn({6, 1, 4, 4});
  Tensor compressed_output;
  {
    NoGradGuard no_grad;
    compressed_output = (*model)(images);
  }
  CleanedModel cleaned = redundancy_clean(model->state_dict(), compressor.state_at(5));
  CHECK(tensor_named(cleaned.tensors, "conv.weight").sizes() == Shape{2, 1, 3, 3});
  CHECK(tensor_named(cleaned.tensors, "conv.bias").sizes() == Shape{2});
  CHECK(tensor_named(cleaned.tensors, "fc1.weight").sizes() == Shape{2, 8});
  CHECK(tensor_named(cleaned.tensors, "fc2.weight").sizes() == Shape{3, 2});
  CHECK(cleaned.packed.size() == 2);
  CHECK(cleaned.packed.at("conv.weight").bits == 4);
  CHECK(cleaned.packed.at("fc1.weight").bits == 8);

  const std::string path =
      (std::filesystem::temp_directory_path() / "zt_test_redundancy_clean.safetensors").string();
  save_cleaned_model(path, cleaned);
  auto smaller = std::make_shared<ConvNet>(2, 2);
  smaller->load_state_dict(load_compressed_model(path));
  std::filesystem::remove(path);
  CHECK(smaller->num_parameters() == cleaned.parameter_count);
  CHECK(smaller->num_parameters() < model->num_parameters());
  NoGradGuard no_grad;
  CHECK(max_difference((*smaller)(images), compressed_output) < 1e-5);
}
