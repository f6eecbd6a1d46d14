// Continuous batching: requests of mixed prompt and output lengths that join and leave the
// running batch get, greedily, exactly the tokens of a plain KV-cache loop over each one alone;
// static batches the same; a seed repeats a sampled request whatever shares its steps.
#include <doctest/doctest.h>

#include <vector>

#include "apps/gpt_inference.h"
#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "tests/inference/inference_fixture.h"

using namespace zt;
using namespace zt::inference;

namespace {

// Greedy decoding of one request with the model's own contiguous KV cache (models/kv_cache.h).
std::vector<int64_t> greedy_alone(models::GPT& model, const GenerationRequest& request) {
  NoGradGuard no_grad;
  models::KVCache cache;
  std::vector<int64_t> feed = request.prompt, out;
  while (int64_t(out.size()) < request.max_new_tokens) {
    Tensor logits = model.forward(from_int64(feed, {1, int64_t(feed.size())}), &cache);
    std::vector<double> last = logits.select(1, logits.size(1) - 1).to_vector();
    const int64_t token = int64_t(std::max_element(last.begin(), last.end()) - last.begin());
    out.push_back(token);
    feed = {token};
  }
  return out;
}

std::vector<GenerationRequest> mixed_requests(int count) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < count; ++i) {
    GenerationRequest request;
    for (int t = 0; t < 1 + (i * 7) % 11; ++t) request.prompt.push_back((i * 5 + t * 3) % 28 + 1);
    request.max_new_tokens = 1 + (i * 13) % 17;
    requests.push_back(request);
  }
  return requests;
}

InferenceConfig serving(int64_t max_batch_size) {
  InferenceConfig config;
  config.max_batch_size = max_batch_size;
  config.kv_block_positions = 4;
  return config;
}

}  // namespace

TEST_CASE("continuous batching: 12 mixed requests get the tokens of each decoded alone (greedy)") {
  for (models::Architecture architecture :
       {models::Architecture::gpt2, models::Architecture::llama}) {
    manual_seed(5);
    auto model = std::make_shared<models::GPT>(testing::serving_config(architecture));
    auto engine = init_inference(model, serving(4));
    const std::vector<GenerationRequest> requests = mixed_requests(12);
    std::vector<std::vector<int64_t>> streamed(requests.size());
    std::vector<int> last_flags(requests.size(), 0);
    std::vector<Completion> completions =
        engine->generate(requests, [&](size_t request, int64_t token, bool last) {
          streamed[request].push_back(token);
          last_flags[request] += last ? 1 : 0;
        });
    const int64_t continuous_steps = engine->last_steps();
    std::vector<Completion> static_completions =
        engine->generate(requests, {}, Batching::static_batches);
    for (size_t i = 0; i < requests.size(); ++i) {
      CAPTURE(i);
      const std::vector<int64_t> alone = greedy_alone(*model, requests[i]);
      CHECK(completions[i].tokens == alone);
      CHECK(static_completions[i].tokens == alone);
      CHECK(streamed[i] == alone);
      CHECK(last_flags[i] == 1);
    }
    // Requests join as others leave: fewer steps than static batches of the same width.
    CHECK(continuous_steps < engine->last_steps());
  }
}

TEST_CASE("a seed repeats a sampled request's tokens whichever requests share its steps") {
  manual_seed(5);
  auto model = std::make_shared<models::GPT>(testing::serving_config(models::Architecture::gpt2));
  auto engine = init_inference(model, serving(3));
  std::vector<GenerationRequest> requests = mixed_requests(5);
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].sampling = {.temperature = 0.9, .top_k = 10, .top_p = 0.95};
    requests[i].seed = 100 + i;
    requests[i].max_new_tokens = 12;
  }
  std::vector<Completion> together = engine->generate(requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    CHECK(engine->generate({requests[i]})[0].tokens == together[i].tokens);
  }
  requests[0].seed = 7;  // another seed, other draws
  CHECK(engine->generate({requests[0]})[0].tokens != together[0].tokens);
}

TEST_CASE("continuous batching admits the longest outputs first: no long request runs alone") {
  // Width 2, outputs of 1, 1 and 10 tokens. In the given order the two short ones take one step
  // together and the long one then runs 10 steps alone (11); longest first, the short ones share
  // the long one's first steps (10), the least any order can take.
  manual_seed(5);
  auto model = std::make_shared<models::GPT>(testing::serving_config(models::Architecture::gpt2));
  auto engine = init_inference(model, serving(2));
  std::vector<GenerationRequest> requests = mixed_requests(3);
  const int64_t outputs[] = {1, 1, 10};
  for (size_t i = 0; i < requests.size(); ++i) requests[i].max_new_tokens = outputs[i];
  std::vector<Completion> completions = engine->generate(requests);
  CHECK(engine->last_steps() == 10);
  for (size_t i = 0; i < requests.size(); ++i) {
    CAPTURE(i);
    CHECK(completions[i].tokens == greedy_alone(*model, requests[i]));
  }
}
