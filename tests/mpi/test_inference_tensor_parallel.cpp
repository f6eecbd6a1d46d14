// Tensor-parallel serving against the whole model served on one rank: a GPT of either layout
// split over every rank of the world (2 and 4 ranks) from the same full weights generates the
// same greedy tokens, and its gathered logits of a prefill and a decode step are within 1e-5
// (relative to the largest logit) of the whole model's; dtypes other than fp32 are refused.
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/generator.h"
#include "inference/inference_engine.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/sharded_state.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/serving_test_helpers.h"

namespace zt::inference {
namespace {

using testing::relative_difference;
using testing::split_serving_config;
using testing::test_world;

std::vector<GenerationRequest> requests() {
  return {{.prompt = {3, 1, 4, 1, 5, 9, 2, 6}, .max_new_tokens = 10},
          {.prompt = {7}, .max_new_tokens = 6},
          {.prompt = {2, 7, 1, 8, 2, 8}, .max_new_tokens = 12}};
}

// A prefill of two sequences (8 and 3 tokens) and then one decode token each, through `engine`'s
// decoder and a fresh cache: the logits of both steps stacked.
std::vector<Tensor> two_steps(InferenceEngine& engine) {
  PagedKVCache cache = engine.make_cache();
  const int64_t first = cache.add_sequence(), second = cache.add_sequence();
  std::vector<Tensor> logits;
  logits.push_back(engine.decoder().step({{.cache_id = first, .tokens = {5, 3, 0, 31, 8, 2, 2, 9}},
                                          {.cache_id = second, .tokens = {11, 17, 4}}},
                                         cache));
  logits.push_back(engine.decoder().step(
      {{.cache_id = first, .tokens = {6}}, {.cache_id = second, .tokens = {30}}}, cache));
  return logits;
}

void check_serves_like_one_rank(models::Architecture architecture) {
  comm::Communicator& world = test_world();
  const models::GPTConfig config = split_serving_config(architecture, world.size());
  manual_seed(19);  // the same whole model on every rank
  auto whole = std::make_shared<models::GPT>(config);
  auto split = std::make_shared<tensor_parallel::TensorParallelGPT>(config, world);
  tensor_parallel::load_full_state(*split, whole->named_parameters(), world.rank(), world.size());
  InferenceConfig serving;
  InferenceEngine reference(whole, serving);
  serving.tp_size = world.size();
  InferenceEngine served(split, serving);

  const std::vector<Completion> expected = reference.generate(requests());
  const std::vector<Completion> got = served.generate(requests());
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].tokens == expected[i].tokens);
  }
  const std::vector<Tensor> expected_logits = two_steps(reference), got_logits = two_steps(served);
  for (size_t step = 0; step < got_logits.size(); ++step) {
    CAPTURE(step);
    CHECK(got_logits[step].size(1) == config.vocab_size);
    CHECK(relative_difference(got_logits[step], expected_logits[step]) < 1e-5);
  }
}

std::string error_of(const std::function<void()>& run) {
  try {
    run();
  } catch (const std::exception& error) {
    return error.what();
  }
  return "(no error)";
}

TEST_CASE("tensor_parallel_gpt2_serving_generates_the_tokens_and_logits_of_one_rank") {
  if (test_world().size() != 2 && test_world().size() != 4) return;
  check_serves_like_one_rank(models::Architecture::gpt2);
}

TEST_CASE("tensor_parallel_llama_serving_generates_the_tokens_and_logits_of_one_rank") {
  if (test_world().size() != 2 && test_world().size() != 4) return;
  check_serves_like_one_rank(models::Architecture::llama);
}

TEST_CASE("tensor_parallel_serving_refuses_other_dtypes_and_a_mismatched_tp_size") {
  if (test_world().size() != 2) return;
  const models::GPTConfig config = split_serving_config(models::Architecture::gpt2, 2);
  auto split = std::make_shared<tensor_parallel::TensorParallelGPT>(config, test_world());
  InferenceConfig serving;
  serving.tp_size = 2;
  serving.dtype = "bf16";
  CHECK(error_of([&] { InferenceEngine(split, serving); }) ==
        "init_inference: dtype bf16 at tensor_parallel.tp_size 2: tensor-parallel serving is "
        "fp32 only; use dtype fp32 without quant, or tp_size 1");
  serving.dtype = "fp32";
  serving.tp_size = 4;
  CHECK(error_of([&] { InferenceEngine(split, serving); }) ==
        "init_inference: tensor_parallel.tp_size 4 but the model is split over 2 ranks");
}

}  // namespace
}  // namespace zt::inference
