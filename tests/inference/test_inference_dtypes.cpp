// Serving in fp16 and bf16: a trained GPT's perplexity within 0.5% of fp32's, half the weight
// bytes, and greedy generation that still runs on the halves.
#include <doctest/doctest.h>

#include <cmath>

#include "apps/gpt_inference.h"
#include "inference/perplexity.h"
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
