// The partition methods against splits worked out by hand, and a PipelineModule built from the
// GPT's specs: which layers a stage holds, their names in the whole model, the tied copies.
#include <doctest/doctest.h>

#include <algorithm>

#include "pipeline/gpt_layers.h"
#include "pipeline/partition.h"
#include "pipeline/pipeline_module.h"

namespace zt::pipeline {
namespace {

TEST_CASE("uniform_partition_gives_the_first_parts_the_extra_layers") {
  CHECK(partition_uniform(7, 3) == std::vector<int>{0, 3, 5, 7});
  CHECK(partition_uniform(4, 4) == std::vector<int>{0, 1, 2, 3, 4});
  CHECK_THROWS_WITH(partition_uniform(3, 4),
                    "pipeline: 3 layers cannot fill 4 stages: each stage (and each model chunk of "
                    "an interleaved stage) needs at least one layer");
}

TEST_CASE("balanced_partition_minimizes_the_largest_part") {
  // 10 + 1 + 1 | 1 + 1 + 10: both parts 12.
  CHECK(partition_balanced({10, 1, 1, 1, 1, 10}, 2) == std::vector<int>{0, 3, 6});
  // 4 | 4 + 1 + 1 | 1 + 1 + 4: the only split whose largest part is 6.
  CHECK(partition_balanced({4, 4, 1, 1, 1, 1, 4}, 3) == std::vector<int>{0, 1, 4, 7});
  // Every part non-empty even where weights are zero.
  CHECK(partition_balanced({0, 0, 0}, 3) == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("type_partition_balances_the_matching_layers_ignoring_case") {
  std::vector<std::string> types = {"GPTEmbedding", "GPT2Block", "GPT2Block", "GPT2Block",
                                    "GPT2Block",    "LayerNorm", "LMHead"};
  std::vector<int64_t> unused(types.size(), 0);
  CHECK(partition_layers("type:gpt2block", unused, types, 2) == std::vector<int>{0, 3, 7});
  CHECK(partition_layers("uniform", unused, types, 2) == std::vector<int>{0, 4, 7});
  CHECK_THROWS_WITH(partition_layers("type:Conv", unused, types, 2),
                    "pipeline: partition method \"type:Conv\": no layer's type name matches");
  CHECK_THROWS_WITH(partition_layers("random", unused, types, 2),
                    "pipeline: partition method \"random\": expected \"parameters\", \"uniform\" "
                    "or \"type:REGEX\"");
}

TEST_CASE("pipeline_module_builds_only_its_stage_of_the_gpt") {
  models::GPTConfig config;
  config.vocab_size = 32;
  config.block_size = 8;
  config.n_layer = 4;
  config.n_head = 2;
  config.n_embd = 16;
  LayerSpecs specs = gpt_layer_specs(config);
  REQUIRE(specs.size() == 7);
  PipelineModule last(specs, {.stages = 2, .partition_method = "type:GPT2Block"}, 1);
  CHECK(last.bounds() == std::vector<int>{0, 3, 7});
  CHECK(last.chunk_layers(0) == std::vector<int>{3, 4, 5, 6});
  std::vector<std::string> names;
  for (const auto& [name, parameter] : last.whole_model_names()) names.push_back(name);
  CHECK(std::find(names.begin(), names.end(), "h.2.attn.c_attn.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "lm_head.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "h.1.ln_1.weight") == names.end());
  // Only the head's copy of the tied embedding is on the last stage.
  auto tied = last.tied_parameters();
  REQUIRE(tied.size() == 1);
  CHECK(tied.at("embedding").size() == 1);
  CHECK(tied.at("embedding")[0].sizes() == Shape{32, 16});
  // "parameters" puts the embeddings (wte + wpe) and the head apart from the blocks.
  PipelineModule first(specs, {.stages = 2}, 0);
  CHECK(first.bounds().front() == 0);
  CHECK(first.bounds().back() == 7);
  CHECK_THROWS_WITH(PipelineModule(specs, {.stages = 8}, 0),
                    "pipeline: 7 layers cannot fill 8 stages: each stage (and each model chunk of "
                    "an interleaved stage) needs at least one layer");
}

}  // namespace
}  // namespace zt::pipeline
