// A 16-bit (fp16, bf16) model's paged KV cache read in place by the decoding steps gives the
// greedy tokens of the path that gathers a copy of the whole context every step, and logits
// within the 16-bit rounding of that path's.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/factory.h"
#include "inference/ragged_decoder.h"
#include "tests/inference/inference_fixture.h"

using namespace zt;
using namespace zt::inference;

namespace {

struct Greedy {
  std::vector<int64_t> tokens;
  std::vector<std::vector<double>> logits;  // of every step
};

// A prompt, then `steps` greedy tokens one a step, through `decoder` on a fresh cache of the
// model's dtype.
Greedy greedy(models::GPT& model, RaggedDecoder& decoder, DType dtype, int steps) {
  const models::GPTConfig& config = model.config();
  PagedKVCache cache({.layers = config.n_layer,
                      .kv_heads = config.resolved_n_kv_head(),
                      .head_dim = config.head_dim(),
                      .block_positions = 4,
                      .blocks = 16},
                     dtype, Device::cpu());
  const int64_t id = cache.add_sequence();
  Greedy result;
  std::vector<int64_t> next = testing::letter_tokens("the quick");
  for (int step = 0; step < steps; ++step) {
    const std::vector<double> logits = decoder.step({{id, next}}, cache).select(0, 0).to_vector();
    const int64_t token = std::max_element(logits.begin(), logits.end()) - logits.begin();
    result.tokens.push_back(token);
    result.logits.push_back(logits);
    next = {token};
  }
  return result;
}

void check_in_place_equals_copying(std::shared_ptr<models::GPT> model, DType dtype,
                                   double tolerance) {
  model->eval();
  model->to(dtype);
  RaggedDecoder in_place(*model), copying(*model);
  copying.set_cache_read_in_place(false);
  const Greedy read = greedy(*model, in_place, dtype, 16);
  const Greedy copied = greedy(*model, copying, dtype, 16);
  CHECK(read.tokens == copied.tokens);
  double worst = 0.0, largest = 0.0;
  for (size_t step = 0; step < read.logits.size(); ++step)
    for (size_t i = 0; i < read.logits[step].size(); ++i) {
      worst = std::max(worst, std::abs(read.logits[step][i] - copied.logits[step][i]));
      largest = std::max(largest, std::abs(copied.logits[step][i]));
    }
  MESSAGE(dtype_name(dtype) << ": in place vs copying, largest logit difference " << worst << " of "
                            << largest);
  CHECK(worst <= tolerance * largest);
}

}  // namespace

TEST_CASE("a 16-bit cache read in place gives the copying path's greedy tokens (gpt2, trained)") {
  check_in_place_equals_copying(testing::trained_gpt(), DType::f16, 5e-3);
  check_in_place_equals_copying(testing::trained_gpt(), DType::bf16, 3e-2);
}

TEST_CASE("a 16-bit cache read in place gives the copying path's greedy tokens (llama, GQA)") {
  for (DType dtype : {DType::f16, DType::bf16}) {
    manual_seed(5);
    auto model =
        std::make_shared<models::GPT>(testing::serving_config(models::Architecture::llama));
    check_in_place_equals_copying(model, dtype, dtype == DType::f16 ? 5e-3 : 3e-2);
  }
}
