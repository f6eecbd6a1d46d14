// ds_config.json's compression_training block: DeepSpeed's defaults, every key read, the shapes
// of DeepSpeed's example configs (tests/compress/fixtures: quantization only, pruning only,
// combined, layer reduction) loading as written, and one-line errors naming the key.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <string>

#include "dist/config.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::dist;
using namespace zt::testing;

namespace {

std::string compression(const std::string& members) {
  return with_batch("\"compression_training\": {" + members + "}");
}

std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(__FILE__).parent_path() / "fixtures" / name;
}

// A technique block with shared parameters `shared` and one group "g1" of `params`.
std::string technique(const std::string& key, const std::string& shared, const std::string& params,
                      const std::string& group_extra = "") {
  return fmt::format(
      R"("{}": {{"shared_parameters": {{{}}}, "different_groups": {{"g1": {{"params": {{{}}}{}}}}}}})",
      key, shared, params, group_extra.empty() ? "" : ", " + group_extra);
}

}  // namespace

TEST_CASE("compression_training: DeepSpeed's defaults when absent or empty") {
  for (const std::string& text : {with_batch(""), compression("")}) {
    const CompressionConfig config = parse(text).compression_training;
    CHECK(!config.any_enabled());
    CHECK(config.weight_quantization.schedule_offset == 0);
    CHECK(config.weight_quantization.quantize_groups == 1);
    CHECK(config.weight_quantization.quantization_type == "symmetric");
    CHECK(config.weight_quantization.rounding == "nearest");
    CHECK(config.weight_quantization.quantize_change_ratio == 0.001);
    CHECK(config.activation_quantization.schedule_offset == 1000);
    CHECK(config.activation_quantization.range_calibration == "dynamic");
    CHECK(config.sparse_pruning.schedule_offset == 1000);
    CHECK(config.sparse_pruning.schedule_offset_end == 1000);  // = schedule_offset
    CHECK(config.sparse_pruning.schedule_offset_stride == 1);
    CHECK(config.sparse_pruning.block_pattern == "4x1");
    CHECK(config.sparse_pruning.dense_ratio == 0.1);
    CHECK(config.sparse_pruning.method == "l1");
    CHECK(config.row_pruning.method == "l1");
    CHECK(config.head_pruning.method == "topk");
    CHECK(config.channel_pruning.schedule_offset == 1000);
    CHECK(!config.layer_reduction.enabled);
  }
  CHECK(parse(compression("")).compression_training.present);
  CHECK(!parse(with_batch("")).compression_training.present);
}

TEST_CASE("compression_training: every key of a group is read") {
  const Config config = parse(compression(
      technique("weight_quantization",
                R"("enabled": true, "schedule_offset": 7, "quantize_groups": 4,
                   "quantization_type": "asymmetric", "rounding": "stochastic")",
                R"("start_bits": 8, "target_bits": 4, "quantization_period": 25)",
                R"("modules": ["conv1", "fc\\d"])") +
      ", " +
      technique("channel_pruning", R"("enabled": true, "schedule_offset": 3, "method": "l1")",
                R"("dense_ratio": 0.5)",
                R"("modules": ["conv1"], "related_modules": [["conv2"]])")));
  const WeightQuantizationConfig& quantization = config.compression_training.weight_quantization;
  CHECK(quantization.enabled);
  CHECK(quantization.schedule_offset == 7);
  CHECK(quantization.quantize_groups == 4);
  CHECK(quantization.quantization_type == "asymmetric");
  CHECK(quantization.rounding == "stochastic");
  REQUIRE(quantization.groups.size() == 1);
  CHECK(quantization.groups[0].name == "g1");
  CHECK(quantization.groups[0].path ==
        "compression_training.weight_quantization.different_groups.g1");
  CHECK(quantization.groups[0].start_bits == 8);
  CHECK(quantization.groups[0].target_bits == 4);
  CHECK(quantization.groups[0].quantization_period == 25);
  CHECK(quantization.groups[0].modules == std::vector<std::string>{"conv1", "fc\\d"});
  const StructuredPruningConfig& channels = config.compression_training.channel_pruning;
  CHECK(channels.schedule_offset == 3);
  REQUIRE(channels.groups.size() == 1);
  CHECK(channels.groups[0].dense_ratio == 0.5);
  REQUIRE(channels.groups[0].related_modules.size() == 1);
  CHECK(channels.groups[0].related_modules[0] == std::vector<std::string>{"conv2"});
}

TEST_CASE("compression_training: DeepSpeed's example config shapes load as written") {
  const Config quantization = load_config(fixture("ds_config_quantization.json"), 1, nullptr);
  CHECK(quantization.compression_training.weight_quantization.enabled);
  CHECK(quantization.compression_training.weight_quantization.groups[0].quantization_period == 0);
  CHECK(quantization.compression_training.activation_quantization.groups[0].bits == 8);

  const Config pruning = load_config(fixture("ds_config_pruning.json"), 1, nullptr);
  CHECK(pruning.compression_training.sparse_pruning.schedule_offset == 30);
  CHECK(pruning.compression_training.row_pruning.method == "topk");
  CHECK(pruning.compression_training.head_pruning.num_heads == 12);
  CHECK(pruning.compression_training.head_pruning.groups[0].related_modules[0].size() == 3);

  const Config combined = load_config(fixture("ds_config_combined.json"), 1, nullptr);
  CHECK(combined.compression_training.weight_quantization.groups.size() == 2);
  CHECK(combined.compression_training.sparse_pruning.schedule_offset_end == 8000);
  CHECK(combined.compression_training.sparse_pruning.excluded_modules.size() == 2);
  CHECK(combined.compression_training.channel_pruning.enabled);

  const Config reduction = load_config(fixture("ds_config_layer_reduction.json"), 1, nullptr);
  const LayerReductionConfig& layers = reduction.compression_training.layer_reduction;
  CHECK(layers.enabled);
  CHECK(layers.keep_number_layer == 5);
  CHECK(layers.teacher_layer == std::vector<int64_t>{2, 4, 6, 8, 10});
  CHECK(layers.module_name_prefix == "bert.encoder.layer");
  CHECK(layers.other_module_name.size() == 3);
}

TEST_CASE("compression_training: bad input is one line naming the key") {
  const std::string group = "compression_training.sparse_pruning.different_groups.g1";
  for (const char* ratio : {"0", "1.5", "-0.1"}) {
    std::string error = error_of(compression(technique(
        "sparse_pruning", R"("enabled": true)", fmt::format(R"("dense_ratio": {})", ratio))));
    CHECK_MESSAGE(contains(error, group + ".params.dense_ratio: expected a number in (0, 1]"),
                  error);
  }
  CHECK(error_of(compression(technique("sparse_pruning", R"("enabled": true)",
                                       R"("dense_ratio": 1)"))) == "(no error)");
  std::string bits = error_of(compression(technique("weight_quantization", R"("enabled": true)",
                                                    R"("start_bits": 4, "target_bits": 8)")));
  CHECK_MESSAGE(contains(bits,
                         "compression_training.weight_quantization.different_groups.g1.params."
                         "target_bits: 8 is above start_bits 4"),
                bits);
  CHECK(contains(error_of(compression(technique("weight_quantization", R"("enabled": true)",
                                                R"("target_bits": 8)"))),
                 "g1.params.start_bits: required"));
  CHECK(
      contains(error_of(compression(R"("row_pruning": {"shared_parameters": {"enabled": true}})")),
               "compression_training.row_pruning.different_groups: needs at least one group"));
  CHECK(contains(
      error_of(compression(R"("head_pruning": {"shared_parameters": {"enabled": true}, )"
                           R"("different_groups": {"h": {"params": {"dense_ratio": 0.5}}}})")),
      "compression_training.head_pruning.shared_parameters.num_heads: required"));
  CHECK(
      contains(error_of(compression(technique("channel_pruning", R"("enabled": true)",
                                              R"("dense_ratio": 0.5)", R"("modules": ["conv("])"))),
               "g1.modules: \"conv(\" is not a valid regular expression"));
  CHECK(contains(error_of(compression(
                     technique("channel_pruning", R"("enabled": true)", R"("dense_ratio": 0.5)",
                               R"("modules": ["a", "b"], "related_modules": [["c"]])"))),
                 "g1.related_modules: expected null or one list of module patterns per entry"));
  CHECK(contains(
      error_of(compression(R"("layer_reduction": {"enabled": true, "keep_number_layer": 3, )"
                           R"("module_name_prefix": "h", "teacher_layer": [1, 3]})")),
      "compression_training.layer_reduction.teacher_layer: lists 2 layers"));
  CHECK(contains(error_of(compression(
                     R"("sparse_pruning": {"shared_parameters": {"block_pattern": "4by1"}})")),
                 "sparse_pruning.shared_parameters.block_pattern: expected \"NxM\""));
  CHECK(contains(error_of(compression(R"("weight_quantizaton": {})")),
                 "compression_training.weight_quantizaton: unknown key (did you mean "
                 "\"weight_quantization\"?)"));
  CHECK(contains(error_of(compression(technique("row_pruning", R"("enabled": true)",
                                                R"("dense_ratio": 0.5, "dense_ration": 1)"))),
                 "g1.params.dense_ration: unknown key"));
}
