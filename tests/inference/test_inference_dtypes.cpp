// Serving in fp16 and bf16 (a trained GPT's perplexity within 0.5% of fp32's, half the weight
// bytes) and int8 / int4 (within 2% / 5%, fewer bytes); greedy generation runs on each; a
// quantization the model cannot honour is one line.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>

#include "apps/gpt_inference.h"
#include "inference/perplexity.h"
#include "tests/error_of.h"
#include "tests/inference/inference_fixture.h"

using namespace zt;
using namespace zt::inference;

TEST_CASE("fp16 and bf16 serving keep a trained GPT's perplexity within 0.5% of fp32's") {
  const std::vector<int64_t> text = testing::letter_tokens(testing::training_text());
  auto reference = testing::trained_gpt();
  const NamedTensors weights = reference->state_dict();
  auto fp32 = init_inference(reference, InferenceConfig{});
  const double fp32_perplexity = perplexity(fp32->model(), text, 32);
  // Trained: far below the uniform perplexity of its 29 tokens.
  CHECK(fp32_perplexity < 14.0);
  for (const char* dtype : {"fp16", "bf16"}) {
    CAPTURE(dtype);
    auto model = std::make_shared<models::GPT>(reference->config());
    model->load_state_dict(weights);
    InferenceConfig config;
    config.dtype = dtype;
    auto engine = init_inference(model, config);
    const double half_perplexity = perplexity(engine->model(), text, 32);
    CHECK(std::abs(half_perplexity / fp32_perplexity - 1.0) < 0.005);
    CHECK(engine->weight_bytes() * 2 == fp32->weight_bytes());
    std::vector<Completion> out = engine->generate({{.prompt = {20, 8, 5}, .max_new_tokens = 5}});
    CHECK(out[0].tokens.size() == 5);
  }
}

TEST_CASE("int8 serving (weight-only, W8A8) keeps perplexity within 2% of fp32's, int4 within 5%") {
  const std::vector<int64_t> text = testing::letter_tokens(testing::training_text());
  auto reference = testing::trained_gpt();
  const NamedTensors weights = reference->state_dict();
  auto fp32 = init_inference(reference, InferenceConfig{});
  const double fp32_perplexity = perplexity(fp32->model(), text, 32);
  struct Case {
    const char* quant;
    int64_t groups;
    double bound;
  };
  for (const Case& served : {Case{"w8", 1, 0.02}, Case{"w8a8", 1, 0.02}, Case{"w4", 4, 0.05}}) {
    CAPTURE(served.quant);
    auto model = std::make_shared<models::GPT>(reference->config());
    model->load_state_dict(weights);
    auto engine =
        init_inference(model, apps::serving_config("int8", served.quant, served.groups, 1));
    const double quantized_perplexity = perplexity(engine->model(), text, 32);
    MESSAGE(fmt::format("{}: perplexity {:.5f} (fp32 {:.5f}), weight bytes {} (fp32 {})",
                        served.quant, quantized_perplexity, fp32_perplexity, engine->weight_bytes(),
                        fp32->weight_bytes()));
    CHECK(std::abs(quantized_perplexity / fp32_perplexity - 1.0) < served.bound);
    CHECK(engine->weight_bytes() < fp32->weight_bytes());
    // Greedy generation runs through the quantized layers.
    CHECK(engine->generate({{.prompt = {20, 8, 5}, .max_new_tokens = 4}})[0].tokens.size() == 4);
  }
}

TEST_CASE("a quantization the model cannot honour is one line") {
  auto model = std::make_shared<models::GPT>(testing::serving_config(models::Architecture::gpt2));
  // Rows of 32 (c_proj) and 96 (c_attn): 5 groups divide neither.
  CHECK(error_of([&] {
          init_inference(model, apps::serving_config("int8", "w8", 5, 1));
        }).find('\n') == std::string::npos);
  CHECK(error_of([&] {
          init_inference(model, apps::serving_config("int8", "w8", 5, 1));
        }).starts_with("init_inference: quant.weight.q_groups: 5 groups do not divide the "));
  inference::InferenceConfig half = apps::serving_config("bf16", "w8", 1, 1);
  CHECK(error_of([&] { init_inference(model, half); }) ==
        "init_inference: dtype bf16 with quant.enabled: quantized layers compute in f32; use "
        "dtype int8 (or fp32)");
}
