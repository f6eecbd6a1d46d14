// engine.save_16bit_model: the tiny GPT-2 (lm_head tied to wte) trained in bf16 at ZeRO stages
// 0-3 writes one file whose tensors are bf16 and bitwise the weights that stage 0 holds whole
// (stages 1-3 train bitwise equal to it), the tied head stored once; at stage 3 without
// gather_16bit_weights_on_model_save nothing is written, as in DeepSpeed.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <string>

#include "autograd/functions.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "models/gpt.h"
#include "tests/models/tiny_gpt_fixture.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/shared_scratch.h"

namespace zt::dist {
namespace {

using testing::test_world;

constexpr int64_t kSequences = 8;  // per global step: divisible by 1, 2, 4 and 8 ranks
constexpr int64_t kLength = 8;

Config bf16_config(int stage, int world, bool gather_on_save) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0, "bf16": {{"enabled": true}},
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 500,
                          "stage3_param_persistence_threshold": 0,
                          "stage3_gather_16bit_weights_on_model_save": {}}}
  }})",
                                 kSequences, stage, gather_on_save);
  return parse_config(text, "save_16bit_test", world, nullptr);
}

// Three steps of the tiny GPT-2 on a fixed stream of tokens, each rank its rows.
void train_three_steps(Engine& engine, int64_t vocab) {
  const int rank = test_world().rank(), world = test_world().size();
  std::vector<int64_t> stream(size_t(kSequences * (kLength + 1)));
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = int64_t((i * i * 5 + i) % size_t(vocab));
  Tensor all = from_int64(stream, {kSequences, kLength + 1});
  const int64_t rows = kSequences / world;
  Tensor tokens =
      ops::contiguous(ops::narrow(ops::narrow(all, 1, 0, kLength), 0, rank * rows, rows));
  Tensor targets =
      ops::contiguous(ops::narrow(ops::narrow(all, 1, 1, kLength), 0, rank * rows, rows));
  for (int step = 0; step < 3; ++step) {
    Tensor logits = engine.forward(tokens).to(DType::f32);
    engine.backward(cross_entropy(logits.reshape({-1, vocab}), targets.reshape({-1})));
    engine.step();
  }
}

TEST_CASE(
    "save_16bit_model at stages 0-3 writes the bf16 weights, bitwise those stage 0 holds, the "
    "tied head once") {
  comm::MpiCommunicator& world = test_world();
  testing::SharedScratch scratch(world, "save-16bit-test");
  // Stage 0 holds every parameter whole on every rank: the reference, its state dict read
  // without a gather.
  std::map<std::string, Tensor> stage0_params;
  for (int stage = 0; stage <= 3; ++stage) {
    CAPTURE(stage);
    auto model = testing::tiny_gpt(models::Architecture::gpt2);
    Engine engine(bf16_config(stage, world.size(), true), model, world);
    train_three_steps(engine, model->config().vocab_size);
    if (stage == 0)
      for (auto& [name, tensor] : model->state_dict()) stage0_params[name] = ops::clone(tensor);
    const std::string file = fmt::format("model_stage{}.safetensors", stage);
    CHECK(engine.save_16bit_model(scratch.path() + "/out", file));
    world.barrier();
    SafetensorsContents saved = load_safetensors(scratch.path() + "/out/" + file);
    // The tied pair once, under the alphabetically first name, the other in the metadata.
    CHECK(saved.metadata.at("wte.weight") == "lm_head.weight");
    CHECK(saved.tensors.size() == stage0_params.size() - 1);
    for (auto& [name, tensor] : saved.tensors) {
      CAPTURE(name);
      REQUIRE(stage0_params.count(name) == 1);
      CHECK(tensor.dtype() == DType::bf16);
      CHECK(tensor.sizes() == stage0_params.at(name).sizes());
      CHECK(tensor.to_vector() == stage0_params.at(name).to_vector());
    }
  }
}

TEST_CASE(
    "save_16bit_model at stage 3 without gather_16bit_weights_on_model_save writes nothing "
    "and returns false on every rank") {
  comm::MpiCommunicator& world = test_world();
  testing::SharedScratch scratch(world, "save-16bit-test");
  auto model = testing::tiny_gpt(models::Architecture::gpt2);
  Engine engine(bf16_config(3, world.size(), false), model, world);
  train_three_steps(engine, model->config().vocab_size);
  CHECK_FALSE(engine.save_16bit_model(scratch.path(), "model.safetensors"));
  world.barrier();
  CHECK_FALSE(std::filesystem::exists(scratch.path() + "/model.safetensors"));
  // At stages 0-2 every rank holds the whole model, and the key is not needed.
  Engine stage2(bf16_config(2, world.size(), false), testing::tiny_gpt(models::Architecture::gpt2),
                world);
  CHECK(stage2.save_16bit_model(scratch.path(), "model.safetensors"));
  world.barrier();
  CHECK(std::filesystem::exists(scratch.path() + "/model.safetensors"));
}

}  // namespace
}  // namespace zt::dist
