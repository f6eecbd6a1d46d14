// A GPT trained with block-sparse attention served split over ranks: each rank attends with
// its own heads' planes of the whole model's layout. On 2 and 4 ranks, GPT-2 and Llama, a
// fixed layout whose heads all differ, a bigbird layout with random blocks of each head's own
// and a bslongformer layout generate the greedy tokens of the whole model on one rank, and the
// logits of a prefill on the block grid (the block-sparse kernel), one off it and a decode step
// (the fused kernel under the layout's mask) are within 1e-5 of its, as are the split model's
// training-forward logits.
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "autograd/functions.h"
#include "core/factory.h"
#include "core/generator.h"
#include "inference/inference_engine.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/sharded_state.h"
#include "tensor_parallel/tp_region.h"
#include "tests/inference/sparse_test_layouts.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/serving_test_helpers.h"

namespace zt::inference {
namespace {

using testing::relative_difference;
using testing::test_world;

// 4 heads, windows of 4 blocks of 2 positions, one global block per window at a different
// place for each head: from position 8 on, every head attends other keys, so a rank that
// took the first heads' planes instead of its own would attend what no head of the whole
// model does.
SparsityConfig fixed_per_head() {
  return testing::causal_fixed_per_head(2, 4, 4);
}
// Causal sliding windows of 3 blocks of 2 positions and the first block global; bigbird adds
// two random blocks a row, drawn for each head apart, so its heads' planes differ too.
SparsityConfig bigbird_per_head() {
  SparsityConfig bigbird;
  bigbird.mode = SparsityMode::bigbird;
  bigbird.block = 2;
  bigbird.num_random_blocks = 2;
  bigbird.unidirectional = true;
  bigbird.different_layout_per_head = true;
  return bigbird;
}
SparsityConfig bslongformer_causal() {
  SparsityConfig bslongformer;
  bslongformer.mode = SparsityMode::bslongformer;
  bslongformer.block = 2;
  bslongformer.global_block_indices = {0, 3};
  bslongformer.unidirectional = true;
  return bslongformer;
}

models::GPTConfig sparse_split_config(models::Architecture architecture, int ranks,
                                      const SparsityConfig& layout) {
  models::GPTConfig config = testing::split_serving_config(architecture, ranks);
  config.sparse_attention = layout;
  return config;
}

// A prefill of 12 tokens (on the grid of blocks of 2: the block-sparse kernel, positions 8..11
// past the first window) and 3 (off it: the mask), then one decode token each.
std::vector<Tensor> prefill_and_decode(InferenceEngine& engine) {
  PagedKVCache cache = engine.make_cache();
  const int64_t first = cache.add_sequence(), second = cache.add_sequence();
  std::vector<Tensor> logits;
  logits.push_back(engine.decoder().step(
      {{.cache_id = first, .tokens = {5, 3, 0, 31, 8, 2, 2, 9, 14, 27, 1, 19}},
       {.cache_id = second, .tokens = {11, 17, 4}}},
      cache));
  logits.push_back(engine.decoder().step(
      {{.cache_id = first, .tokens = {6}}, {.cache_id = second, .tokens = {30}}}, cache));
  return logits;
}

void check_split_serving_matches_one_rank(models::Architecture architecture,
                                          const SparsityConfig& layout) {
  comm::Communicator& world = test_world();
  const models::GPTConfig config = sparse_split_config(architecture, world.size(), layout);
  manual_seed(23);  // the same whole model on every rank
  auto whole = std::make_shared<models::GPT>(config);
  auto split = std::make_shared<tensor_parallel::TensorParallelGPT>(config, world);
  tensor_parallel::load_full_state(*split, whole->named_parameters(), world.rank(), world.size());
  models::GPTConfig dense_config = config;
  dense_config.sparse_attention.reset();
  auto dense = std::make_shared<models::GPT>(dense_config);
  dense->load_state_dict(whole->state_dict());

  InferenceConfig serving;
  InferenceEngine reference(whole, serving), dense_reference(dense, serving);
  serving.tp_size = world.size();
  InferenceEngine served(split, serving);

  const std::vector<GenerationRequest> requests = {
      {.prompt = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3}, .max_new_tokens = 14},
      {.prompt = {7}, .max_new_tokens = 12},
      {.prompt = {2, 7, 1, 8, 2, 8}, .max_new_tokens = 12}};
  const std::vector<Completion> expected = reference.generate(requests);
  const std::vector<Completion> got = served.generate(requests);
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].tokens == expected[i].tokens);
  }
  // The training forward, the block-sparse kernel over a sequence on the grid, splits alike.
  const std::vector<int64_t> sequence = {5, 3, 0, 31, 8, 2, 2, 9, 14, 27, 1, 19};
  const Tensor tokens = from_int64(sequence, {1, 12});
  CHECK(relative_difference(tensor_parallel::all_gathered_last_dim((*split)(tokens), world),
                            (*whole)(tokens)) < 1e-5);
  const std::vector<Tensor> expected_logits = prefill_and_decode(reference);
  const std::vector<Tensor> got_logits = prefill_and_decode(served);
  const std::vector<Tensor> dense_logits = prefill_and_decode(dense_reference);
  for (size_t step = 0; step < got_logits.size(); ++step) {
    CAPTURE(step);
    CHECK(relative_difference(got_logits[step], expected_logits[step]) < 1e-5);
    // The layout decides these logits: the same weights attending densely give others.
    CHECK(relative_difference(dense_logits[step], expected_logits[step]) > 1e-3);
  }
}

TEST_CASE("a sparse GPT-2 served split over ranks generates the tokens and logits of one rank") {
  if (test_world().size() != 2 && test_world().size() != 4) return;
  check_split_serving_matches_one_rank(models::Architecture::gpt2, fixed_per_head());
}

TEST_CASE("a sparse Llama served split over ranks generates the tokens and logits of one rank") {
  if (test_world().size() != 2 && test_world().size() != 4) return;
  check_split_serving_matches_one_rank(models::Architecture::llama, fixed_per_head());
}

TEST_CASE("bigbird and bslongformer GPTs served split over ranks match one rank") {
  if (test_world().size() != 2 && test_world().size() != 4) return;
  for (const SparsityConfig& layout : {bigbird_per_head(), bslongformer_causal()}) {
    for (models::Architecture architecture :
         {models::Architecture::gpt2, models::Architecture::llama}) {
      CAPTURE(sparsity_mode_name(layout.mode));
      CAPTURE(int(architecture));
      check_split_serving_matches_one_rank(architecture, layout);
    }
  }
}

TEST_CASE("a rank's sparse plan holds its own heads' planes of the whole layout") {
  for (const SparsityConfig& layout : {fixed_per_head(), bigbird_per_head()}) {
    CAPTURE(sparsity_mode_name(layout.mode));
    const SparseLayout whole = make_sparse_layout(layout, 4, 40);
    const size_t plane = size_t(whole.blocks * whole.blocks);
    for (int64_t first = 0; first < 4; first += 2) {
      models::SparseAttentionPlan share(layout, 4, 40, first, 2);
      CHECK(share.layout().heads == 2);
      CHECK(share.layout().active ==
            std::vector<uint8_t>(whole.active.begin() + std::ptrdiff_t(size_t(first) * plane),
                                 whole.active.begin() + std::ptrdiff_t(size_t(first + 2) * plane)));
    }
    // The heads' planes differ, so a share is its own.
    CHECK(models::SparseAttentionPlan(layout, 4, 40, 2, 2).layout().active !=
          models::SparseAttentionPlan(layout, 4, 40, 0, 2).layout().active);
  }
  CHECK_THROWS_WITH(models::SparseAttentionPlan(fixed_per_head(), 4, 40, 3, 2),
                    "sparse attention: heads 3 .. 4 asked of a layout of 4 heads");
}

}  // namespace
}  // namespace zt::inference
