// The attention-dropout generators seeded per tensor rank
// (tensor_parallel/tensor_rank_generator.h): every layer of a rank has its own stream, so two
// layers drop different attention weights (with values one-hot over the positions, the attention
// output of a row is its weights, so its zeros are the dropped ones); every (layer, tensor rank)
// seed of the group differs; and the pipeline's split layers seed each layer as TensorParallelGPT
// does (so a pipeline of tensor-parallel layers draws the whole model's masks), for GPT-2 and
// Llama.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/generator.h"
#include "models/causal_attention.h"
#include "models/gpt.h"
#include "pipeline/gpt_layers.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/tensor_rank_generator.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::tensor_parallel {
namespace {

using ::zt::testing::test_world;

constexpr int64_t kPositions = 8;

models::GPTConfig dropout_config(models::Architecture architecture) {
  models::GPTConfig config;
  config.architecture = architecture;
  config.vocab_size = 64;
  config.block_size = kPositions;
  config.n_layer = 3;
  config.n_head = 8;  // splits over 1, 2, 4 or 8 tensor ranks, as do the vocabulary and the MLP
  config.n_embd = 32;
  config.dropout = 0.5;
  return config;
}

// Which attention weights a draw from (a copy of) `generator` drops: q = k = 0 (uniform weights
// over the causal rows), v one-hot over the positions, so output [t, s] is weight (t, s) after
// dropout; true where it is zero inside the causal triangle.
std::vector<bool> dropped_weights(const Generator& generator) {
  Generator copy = generator;
  std::vector<double> one_hot(size_t(kPositions * kPositions), 0.0);
  for (int64_t s = 0; s < kPositions; ++s) one_hot[size_t(s * kPositions + s)] = 1.0;
  const Tensor v = from_values(one_hot, {1, 1, kPositions, kPositions});
  const Tensor qk = zeros({1, 1, kPositions, kPositions});
  const Tensor out =
      models::causal_self_attention(qk, qk, v, Tensor(), Tensor(), 0.5, nullptr, &copy)
          .output.contiguous();
  std::vector<bool> dropped;
  const float* weights = out.data_ptr<float>();
  for (int64_t t = 0; t < kPositions; ++t)
    for (int64_t s = 0; s <= t; ++s) dropped.push_back(weights[t * kPositions + s] == 0.0f);
  return dropped;
}

// The attention module's name of layer `layer` in the whole model.
std::string attention_name(models::Architecture architecture, int64_t layer) {
  return architecture == models::Architecture::gpt2
             ? fmt::format("h.{}.attn", layer)
             : fmt::format("model.layers.{}.self_attn", layer);
}

TEST_CASE("each_layer_of_a_tensor_rank_draws_its_own_attention_dropout_masks") {
  comm::Communicator& world = test_world();
  if (8 % world.size() != 0) return;
  for (models::Architecture architecture :
       {models::Architecture::gpt2, models::Architecture::llama}) {
    CAPTURE(models::architecture_name(architecture));
    const models::GPTConfig config = dropout_config(architecture);
    auto model = std::make_shared<TensorParallelGPT>(config, world, /*dropout_seed=*/1234);
    const std::map<std::string, Generator*> generators = tensor_rank_generators(*model);
    REQUIRE(generators.size() == size_t(config.n_layer));
    std::vector<std::vector<bool>> masks;
    std::vector<double> seeds(size_t(config.n_layer * world.size()), 0.0);
    for (int64_t layer = 0; layer < config.n_layer; ++layer) {
      const Generator& generator = *generators.at(attention_name(architecture, layer));
      masks.push_back(dropped_weights(generator));
      seeds[size_t(layer * world.size() + world.rank())] = double(generator.seed());
    }
    for (size_t a = 0; a < masks.size(); ++a) {
      // p = 0.5 over 36 weights: some are dropped and some kept, so a mask says something.
      CHECK(std::count(masks[a].begin(), masks[a].end(), true) > 0);
      CHECK(std::count(masks[a].begin(), masks[a].end(), false) > 0);
      for (size_t b = a + 1; b < masks.size(); ++b) {
        CAPTURE(a);
        CAPTURE(b);
        CHECK(masks[a] != masks[b]);
      }
    }
    // Every (layer, tensor rank) of the group has its own seed.
    Tensor gathered = from_values(seeds, {int64_t(seeds.size())}, {.dtype = DType::f64});
    world.all_reduce(gathered, comm::ReduceOperation::sum);
    const double* all = gathered.data_ptr<double>();
    CHECK(std::set<double>(all, all + gathered.numel()).size() == seeds.size());

    // The pipeline's split layers seed each layer as the whole model does.
    const pipeline::LayerSpecs specs = pipeline::gpt_layer_specs(config, world, 1234);
    int64_t layer = 0;
    for (const pipeline::LayerSpec& spec : specs) {
      const auto built = spec.build();
      const std::map<std::string, Generator*> own = tensor_rank_generators(*built);
      if (own.empty()) continue;
      CAPTURE(layer);
      REQUIRE(own.size() == 1);
      CHECK(own.begin()->second->seed() ==
            generators.at(attention_name(architecture, layer))->seed());
      ++layer;
    }
    CHECK(layer == config.n_layer);
  }
}

TEST_CASE("attention_dropout_seed_refuses_a_negative_layer_or_a_rank_past_the_stride") {
  CHECK(attention_dropout_seed(10, 2, 3) == 10 + kTensorRankSeedOffset + 2 * kLayerSeedStride + 3);
  CHECK_THROWS_WITH_AS(attention_dropout_seed(10, -1, 0),
                       "attention_dropout_seed: the layer index must be >= 0, got -1",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(attention_dropout_seed(10, 0, int(kLayerSeedStride)),
                       "attention_dropout_seed: the tensor rank must be in [0, 65536), got 65536",
                       std::invalid_argument);
}

}  // namespace
}  // namespace zt::tensor_parallel
