// The GPT parts of compression under the engine: a 2-layer student initialised by
// layer_reduction from layers 0 and 2 of a 3-layer teacher, trained with learned head pruning
// (topk scores on attn.c_proj) and topk sparse pruning of mlp.c_fc, reaches the same weights
// and scores at ZeRO stages 0-3 on 2 ranks as a one-process loop with plain Adam: the scores
// are parameters like the weights (reduced, partitioned, gathered before the hooks run). The
// techniques start at step 0: a score without a gradient would be skipped by the loop's Adam
// but stepped with a zero gradient by the engine, and their step counts would part.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "compress/compressor.h"
#include "compress/layer_reduction.h"
#include "compress/mask_scores.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "models/gpt.h"
#include "optim/adam.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::dist {
namespace {

using namespace testing;

constexpr int kGptSteps = 8;
constexpr int64_t kWindows = 8, kLength = 8, kVocab = 32;  // 8: every world size the suite runs

const char* kGptCompression = R"("compression_training": {
  "head_pruning": {"shared_parameters": {"enabled": true, "num_heads": 4, "schedule_offset": 0},
    "different_groups": {"hp": {"params": {"dense_ratio": 0.5}, "modules": ["attn.c_proj"],
                                "related_modules": [["attn.c_attn"]]}}},
  "sparse_pruning": {"shared_parameters": {"enabled": true, "method": "topk",
                                           "schedule_offset": 0},
    "different_groups": {"sp": {"params": {"dense_ratio": 0.5}, "modules": ["mlp.c_fc"]}}},
  "layer_reduction": {"enabled": true, "keep_number_layer": 2, "module_name_prefix": "h",
                      "teacher_layer": [0, 2], "other_module_name": ["wte", "wpe", "ln_f"]}
})";

Config gpt_compression_config(int stage, int world) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "zero_optimization": {{"stage": {}, "stage3_param_persistence_threshold": 0}},
    {}
  }})",
                                 kWindows, stage, kGptCompression);
  return parse_config(text, "test_config", world, nullptr);
}

models::GPTConfig gpt_of(int64_t layers) {
  models::GPTConfig config;
  config.vocab_size = kVocab;
  config.block_size = kLength;
  config.n_layer = layers;
  config.n_head = 4;
  config.n_embd = 16;
  return config;
}

// The student: layer_reduction from a fixed teacher, then the topk scores.
std::shared_ptr<models::GPT> make_student(const CompressionConfig& compression) {
  manual_seed(42);
  auto teacher = std::make_shared<models::GPT>(gpt_of(3));
  auto student = std::make_shared<models::GPT>(gpt_of(2));
  compress::initialize_student(*student, teacher->state_dict(), compression.layer_reduction);
  compress::add_mask_scores(*student, compression, 5);
  return student;
}

// Step `step`'s windows: inputs and next tokens, [kWindows, kLength] each.
std::pair<Tensor, Tensor> token_batch(int step) {
  std::vector<int64_t> inputs, targets;
  for (int64_t i = 0; i < kWindows * kLength; ++i) {
    inputs.push_back((i * 7 + step * 3 + i / 5) % kVocab);
    targets.push_back((i * 5 + step + 1) % kVocab);
  }
  return {from_int64(inputs, {kWindows, kLength}), from_int64(targets, {kWindows, kLength})};
}

Tensor next_token_loss(const Tensor& logits, const Tensor& targets) {
  const int64_t rows = targets.numel();
  return cross_entropy(logits.reshape({rows, kVocab}), targets.reshape({rows}));
}

std::vector<double> train_gpt_with_engine(int stage) {
  comm::MpiCommunicator& world = test_world();
  comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
  Config config = gpt_compression_config(stage, world.size());
  Engine engine(config, make_student(config.compression_training), grid.data_group());
  compress::Compressor compressor(engine.module(), config.compression_training,
                                  [&] { return engine.global_steps(); });
  const int64_t micro = kWindows / world.size();
  for (int step = 0; step < kGptSteps; ++step) {
    auto [inputs, targets] = token_batch(step);
    const int64_t first = world.rank() * micro;
    Tensor logits = engine.forward(ops::narrow(inputs, 0, first, micro));
    engine.backward(next_token_loss(logits, ops::narrow(targets, 0, first, micro)));
    engine.step();
  }
  return concatenated(engine.consolidated_state_dict());
}

std::vector<double> train_gpt_single_process(bool with_compression) {
  Config config = gpt_compression_config(0, 1);
  std::shared_ptr<models::GPT> model = make_student(config.compression_training);
  int64_t step = 0;
  std::optional<compress::Compressor> compressor;
  if (with_compression)
    compressor.emplace(*model, config.compression_training, [&] { return step; });
  optim::Adam adam(optim::single_group(model->parameters(), 0.01, 0.0));
  for (; step < kGptSteps;) {
    auto [inputs, targets] = token_batch(int(step));
    Tensor loss = next_token_loss((*model)(inputs), targets);
    adam.zero_grad();
    loss.backward();
    adam.step();
    ++step;
  }
  return concatenated(model->state_dict());
}

TEST_CASE("GPT head and topk pruning with layer reduction: stages 0-3 train as one process") {
  const std::vector<double> reference = train_gpt_single_process(true);
  CHECK(relative_error(train_gpt_single_process(false), reference) > 1e-3);
  for (int stage = 0; stage <= 3; ++stage) {
    const std::vector<double> weights = train_gpt_with_engine(stage);
    CHECK_MESSAGE(relative_error(weights, reference) < 1e-5, "stage ", stage);
  }
}

}  // namespace
}  // namespace zt::dist
