// What gpt_train records about its model: the metadata of a GPT config reads back as the same
// config for both layouts, a file of another network or with a broken field is a one-line
// error naming the file and the key, and a resumed run with another shape names the key.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "apps/gpt_model_files.h"
#include "tests/error_of.h"

using namespace zt;
using namespace zt::apps;

namespace {

std::string config_error(const SafetensorsMetadata& metadata) {
  return error_of([&] { gpt_config_from_metadata(metadata, "m.safetensors"); });
}

}  // namespace

TEST_CASE("gpt metadata reads back as the config it was written from, gpt2 and llama") {
  models::GPTConfig gpt2;
  gpt2.n_layer = 3;
  gpt2.n_embd = 48;
  gpt2.n_head = 4;
  gpt2.block_size = 64;
  models::GPTConfig llama = gpt2;
  llama.architecture = models::Architecture::llama;
  llama.bias = false;
  llama.n_kv_head = 2;
  llama.rope_theta = 500000.0;
  llama.norm_eps = 1e-6;
  for (const models::GPTConfig& config : {gpt2, llama}) {
    CAPTURE(models::architecture_name(config.architecture));
    models::GPTConfig back = gpt_config_from_metadata(gpt_metadata(config), "m.safetensors");
    CHECK(back.architecture == config.architecture);
    CHECK(back.n_layer == config.n_layer);
    CHECK(back.n_head == config.n_head);
    CHECK(back.n_embd == config.n_embd);
    CHECK(back.block_size == config.block_size);
    CHECK(back.vocab_size == config.vocab_size);
    CHECK(back.resolved_n_kv_head() == config.resolved_n_kv_head());
    CHECK(back.resolved_intermediate_size() == config.resolved_intermediate_size());
    CHECK(back.bias == config.bias);
    CHECK(back.norm_eps == config.norm_eps);
    CHECK(back.rope_theta == config.rope_theta);
    CHECK(back.tie_word_embeddings == config.tie_word_embeddings);
    CHECK_NOTHROW(check_same_gpt(gpt_metadata(config), config, "ckpt"));
  }
}

TEST_CASE("gpt metadata of another network or with a broken field is a one-line error") {
  SafetensorsMetadata metadata = gpt_metadata(models::GPTConfig{});
  SafetensorsMetadata mlp = {{"model", "mlp"}, {"dataset", "mnist"}};
  CHECK(config_error(mlp) ==
        "m.safetensors: metadata \"model\" is \"mlp\": a model of another network, not a GPT");
  SafetensorsMetadata missing = metadata;
  missing.erase("n_head");
  CHECK(config_error(missing) ==
        "m.safetensors: metadata \"n_head\" missing (not a model of gpt_train)");
  SafetensorsMetadata not_number = metadata;
  not_number["n_layer"] = "six";
  CHECK(config_error(not_number) ==
        "m.safetensors: metadata \"n_layer\": expected a number, got \"six\"");
  SafetensorsMetadata bad_width = metadata;
  bad_width["n_embd"] = "100";  // not a multiple of 6 heads
  CHECK(config_error(bad_width).find("m.safetensors: metadata: GPTConfig: n_embd:") == 0);
  SafetensorsMetadata bad_flag = metadata;
  bad_flag["bias"] = "yes";
  CHECK(config_error(bad_flag) ==
        "m.safetensors: metadata \"bias\": expected true or false, got \"yes\"");
}

TEST_CASE("a resumed run of another GPT shape names the first key that differs") {
  models::GPTConfig saved, wanted;
  wanted.n_embd = 192;
  CHECK(error_of([&] { check_same_gpt(gpt_metadata(saved), wanted, "ckpt/model.safetensors"); }) ==
        "ckpt/model.safetensors: metadata \"n_embd\": the checkpoint has \"384\", this run "
        "\"192\" (a checkpoint of another model)");
}

TEST_CASE("a head-pruned GPT's per-layer heads read back; bad counts name the key") {
  models::GPTConfig config;
  config.n_layer = 3;
  config.n_head = 4;
  config.n_embd = 32;
  CHECK(!gpt_metadata(config).contains("layer_heads"));  // unpruned files stay as they were
  config.layer_heads = {2, 4, 1};
  const SafetensorsMetadata metadata = gpt_metadata(config);
  CHECK(metadata.at("layer_heads") == "2,4,1");
  CHECK(gpt_config_from_metadata(metadata, "m").layer_heads == std::vector<int64_t>{2, 4, 1});
  SafetensorsMetadata broken = metadata;
  broken["layer_heads"] = "2,x,1";
  CHECK_THROWS_WITH(gpt_config_from_metadata(broken, "m"),
                    "m: metadata \"layer_heads\": expected counts like \"2,3\", got \"2,x,1\"");
  broken["layer_heads"] = "2,5,1";
  CHECK_THROWS_WITH(gpt_config_from_metadata(broken, "m"),
                    "m: metadata: GPTConfig: layer_heads: expected 1..4 heads a layer, got 5");
}
