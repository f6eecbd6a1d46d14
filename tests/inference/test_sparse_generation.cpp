// A GPT trained with block-sparse attention keeps its layout through the model file: the
// sparse_attention block written into gpt_train's metadata reads back as the same layout for
// every mode, a file without it loads dense as before, a broken one names the key; and the
// model loaded from the file (as gpt_generate, gpt_serve and gpt_eval load it) generates with
// the training forward's logits, not the dense model's.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "apps/gpt_model_files.h"
#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/generator.h"
#include "inference/inference_engine.h"
#include "inference/ragged_decoder.h"
#include "tests/error_of.h"
#include "tests/inference/inference_fixture.h"
#include "tests/inference/sparse_test_layouts.h"

using namespace zt;
using namespace zt::inference;

namespace {

// GPT-2, 2 heads, context 64; windows of 2 blocks of 8 with one global block: a position past
// the first window sees far fewer keys than dense attention's.
models::GPTConfig sparse_gpt_config(models::Architecture architecture) {
  models::GPTConfig config = testing::serving_config(architecture, 64);
  config.sparse_attention = testing::causal_fixed_per_head(8, 2, 2);
  return config;
}

std::vector<double> last_logits(models::GPT& model, const std::vector<int64_t>& tokens) {
  NoGradGuard no_grad;
  Tensor logits = model(from_int64(tokens, {1, int64_t(tokens.size())}));
  return logits.select(1, logits.size(1) - 1).to_vector();
}

double max_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// The model written as gpt_train writes its --save file and loaded as gpt_generate loads it.
std::shared_ptr<models::GPT> saved_and_loaded(models::GPT& model, const std::string& path) {
  save_safetensors(path, model.state_dict(), apps::gpt_metadata(model.config()));
  SafetensorsContents contents = load_safetensors(path);
  return apps::load_gpt(contents.metadata, contents.tensors, path);
}

}  // namespace

TEST_CASE("the sparse_attention block in a model file reads back as the same layout, every mode") {
  std::vector<SparsityConfig> configs(5);
  configs[0].mode = SparsityMode::dense;
  configs[1].unidirectional = true;  // fixed
  configs[2].mode = SparsityMode::variable;
  configs[2].num_random_blocks = 1;
  configs[2].local_window_blocks = {2, 3};
  configs[2].global_block_indices = {0, 5};
  configs[2].global_block_end_indices = {2, 6};
  configs[2].different_layout_per_head = true;
  configs[3].mode = SparsityMode::bigbird;
  configs[3].num_random_blocks = 2;
  configs[3].unidirectional = true;
  configs[4].mode = SparsityMode::bslongformer;
  configs[4].num_sliding_window_blocks = 5;
  configs[4].global_block_indices = {1};
  for (const SparsityConfig& sparse : configs) {
    CAPTURE(sparsity_mode_name(sparse.mode));
    models::GPTConfig config = testing::serving_config(models::Architecture::gpt2, 128);
    config.sparse_attention = sparse;
    SafetensorsMetadata metadata = apps::gpt_metadata(config);
    REQUIRE(metadata.contains("sparse_attention"));
    models::GPTConfig back = apps::gpt_config_from_metadata(metadata, "m.safetensors");
    REQUIRE(back.sparse_attention.has_value());
    CHECK(make_sparse_layout(*back.sparse_attention, 4, 128, 0).active ==
          make_sparse_layout(sparse, 4, 128, 0).active);
    CHECK(apps::gpt_metadata(back) == metadata);
  }
}

TEST_CASE("a model file without sparse_attention loads dense; a broken one names the key") {
  models::GPTConfig dense = testing::serving_config(models::Architecture::gpt2);
  SafetensorsMetadata metadata = apps::gpt_metadata(dense);
  CHECK_FALSE(metadata.contains("sparse_attention"));
  CHECK_FALSE(apps::gpt_config_from_metadata(metadata, "m.safetensors").sparse_attention);

  auto error = [&](const std::string& block) {
    SafetensorsMetadata broken = metadata;
    broken["sparse_attention"] = block;
    return error_of([&] { apps::gpt_config_from_metadata(broken, "m.safetensors"); });
  };
  CHECK(error(R"({"mode": "diagonal"})").find("m.safetensors: metadata: sparse_attention.mode") ==
        0);
  CHECK(error(R"({"mode": "fixed", "num_sliding_window_blocks": 3})")
            .find("sparse_attention.num_sliding_window_blocks: not read by mode \"fixed\"") !=
        std::string::npos);
  CHECK(error("[1, 2]").find("expected a JSON object") != std::string::npos);
  // A block of 32 does not divide the context of 48.
  CHECK(error(R"({"mode": "fixed", "block": 32, "num_local_blocks": 1})")
            .find("block_size: expected a multiple of sparse_attention.block (32)") !=
        std::string::npos);

  // Resuming a sparse checkpoint densely is resuming another model.
  models::GPTConfig sparse = sparse_gpt_config(models::Architecture::gpt2);
  models::GPTConfig same_dense = sparse;
  same_dense.sparse_attention.reset();
  CHECK(error_of([&] {
          apps::check_same_gpt(apps::gpt_metadata(sparse), same_dense, "ckpt");
        }).find("ckpt: metadata \"sparse_attention\": the checkpoint has \"{") == 0);
  CHECK(error_of([&] {
          apps::check_same_gpt(apps::gpt_metadata(same_dense), sparse, "ckpt");
        }).find("ckpt: metadata \"sparse_attention\": the checkpoint has nothing, this run \"{") ==
        0);
}

TEST_CASE(
    "a sparse-trained GPT loaded from its file generates with the training forward's logits") {
  const std::string path =
      (std::filesystem::temp_directory_path() / "zt_sparse_generation.safetensors").string();
  for (models::Architecture architecture :
       {models::Architecture::gpt2, models::Architecture::llama}) {
    CAPTURE(models::architecture_name(architecture));
    manual_seed(5);
    auto trained = std::make_shared<models::GPT>(sparse_gpt_config(architecture));
    trained->eval();
    std::shared_ptr<models::GPT> loaded = saved_and_loaded(*trained, path);
    REQUIRE(loaded->config().sparse_attention.has_value());
    // The same weights attending densely: the layout must make a difference to be tested.
    models::GPTConfig dense_config = trained->config();
    dense_config.sparse_attention.reset();
    auto dense = std::make_shared<models::GPT>(dense_config);
    dense->load_state_dict(trained->state_dict(), true);
    dense->eval();

    InferenceEngine engine(loaded, InferenceConfig{});
    PagedKVCache cache = engine.make_cache();
    // A prompt of 40 (5 blocks: the block-sparse kernel), one of 37 (off the block grid: the
    // layout as a mask), then single tokens through the cache (the mask again).
    std::vector<std::vector<int64_t>> sequences(2);
    for (int64_t i = 0; i < 40; ++i) sequences[0].push_back((i * 7 + 3) % 28 + 1);
    for (int64_t i = 0; i < 37; ++i) sequences[1].push_back((i * 5 + 1) % 28 + 1);
    std::vector<RaggedSequence> batch;
    for (const auto& sequence : sequences) batch.push_back({cache.add_sequence(), sequence});
    for (int step = 0; step < 6; ++step) {
      Tensor logits = engine.decoder().step(batch, cache);
      for (size_t s = 0; s < batch.size(); ++s) {
        CAPTURE(step);
        CAPTURE(s);
        std::vector<double> got = logits.select(0, int64_t(s)).to_vector();
        CHECK(max_difference(got, last_logits(*trained, sequences[s])) < 1e-5);
        CHECK(max_difference(got, last_logits(*dense, sequences[s])) > 1e-3);
        const int64_t token = (step * 3 + int64_t(s)) % 28 + 1;
        sequences[s].push_back(token);
        batch[s].tokens = {token};
      }
    }
    // generate() end to end: greedy tokens are the training forward's argmax, step by step.
    std::vector<int64_t> prompt(sequences[0].begin(), sequences[0].begin() + 33);
    std::vector<Completion> completions =
        engine.generate({{.prompt = prompt, .max_new_tokens = 8}});
    std::vector<int64_t> context = prompt;
    for (int64_t token : completions.at(0).tokens) {
      std::vector<double> expected = last_logits(*trained, context);
      CHECK(token ==
            int64_t(std::max_element(expected.begin(), expected.end()) - expected.begin()));
      context.push_back(token);
    }
  }
  std::filesystem::remove(path);
}
