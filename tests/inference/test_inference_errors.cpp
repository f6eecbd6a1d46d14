// Bad input to the inference engine is one line naming it: a prompt past the context, a
// checkpoint of another model, tensor parallelism asked for, too little room for min_out_tokens.
#include <doctest/doctest.h>

#include <filesystem>

#include "apps/gpt_inference.h"
#include "apps/gpt_model_files.h"
#include "core/safetensors.h"
#include "tests/error_of.h"
#include "tests/inference/inference_fixture.h"

using namespace zt;
using namespace zt::inference;

TEST_CASE("inference refuses a prompt longer than the context in one line") {
  auto model =
      std::make_shared<models::GPT>(testing::serving_config(models::Architecture::gpt2, 16));
  auto engine = init_inference(model, InferenceConfig{});
  GenerationRequest fits{.prompt = std::vector<int64_t>(10, 1), .max_new_tokens = 6};
  GenerationRequest too_long{.prompt = std::vector<int64_t>(20, 1), .max_new_tokens = 1};
  CHECK(engine->generate({fits})[0].tokens.size() == 6);
  CHECK(error_of([&] {
          engine->generate({fits, too_long});
        }) ==
        "request 1: a prompt of 20 tokens leaves 0 of the 16 positions of the model's context "
        "(block_size), fewer than min_out_tokens 1");
  fits.max_new_tokens = 7;
  CHECK(error_of([&] { engine->generate({fits}); }) ==
        "request 0: the prompt's 10 tokens + max_new_tokens 7 = 17 pass the 16 positions of the "
        "model's context (block_size)");
  InferenceConfig room;
  room.max_out_tokens = 12;
  room.min_out_tokens = 4;
  auto short_engine = init_inference(model, room);
  CHECK(error_of([&] { short_engine->generate({{.prompt = std::vector<int64_t>(9, 1)}}); }) ==
        "request 0: a prompt of 9 tokens leaves 3 of the 12 positions of max_out_tokens, fewer "
        "than min_out_tokens 4");
}

TEST_CASE("inference refuses a checkpoint of another model and tensor parallelism in one line") {
  const std::string path =
      (std::filesystem::temp_directory_path() / "zt_inference_other_shape.safetensors").string();
  models::GPTConfig wider = testing::serving_config(models::Architecture::gpt2);
  wider.n_embd = 64;
  models::GPT saved(wider);
  save_safetensors(path, saved.state_dict(), apps::gpt_metadata(wider));
  InferenceConfig config;
  config.checkpoint = path;
  auto model = std::make_shared<models::GPT>(testing::serving_config(models::Architecture::gpt2));
  CHECK(error_of([&] { init_inference(model, config); }) ==
        path +
            ": metadata \"n_embd\": the checkpoint has \"64\", this run \"32\" (a checkpoint "
            "of another model)");
  // Without a model the checkpoint's own shape is served.
  CHECK(init_inference(config)->model().config().n_embd == 64);
  config.checkpoint = path + ".missing";
  CHECK(error_of([&] { init_inference(config); }) ==
        "checkpoint: " + path + ".missing: no such checkpoint folder or model file");
  std::filesystem::remove(path);
  InferenceConfig tensor_parallel;
  tensor_parallel.tp_size = 2;
  CHECK(error_of([&] { init_inference(model, tensor_parallel); }) ==
        "init_inference: tensor_parallel.tp_size 2: a whole model is served on one rank; "
        "tp_size > 1 serves a TensorParallelGPT split over that many MPI ranks");
}
