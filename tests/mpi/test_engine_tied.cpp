// Multi-rank tests of tied weights at every ZeRO stage (the model of tests/nn/tied_model.h):
// trained bitwise equal to stage 0 and to a single process that sums the ranks' gradients the
// same way; the tied weight's gradient against finite differences of the loss; a tied weight
// stored once in checkpoints and resumed at another stage; and the error for an external
// parameter read without being declared.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"
#include "core/safetensors.h"
#include "dist/checkpoint_files.h"
#include "dist/engine.h"
#include "optim/adam.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/nn/tied_model.h"

using namespace zt::comm;

namespace zt::dist {
namespace {

using namespace testing;

constexpr int kTiedSteps = 6;

Config tied_config(int stage, int world, const std::string& optimizer) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0,
    "optimizer": {},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 50,
                          "stage3_param_persistence_threshold": 0}}
  }})",
                                 kTiedBatch, optimizer, stage);
  return parse_config(text, "tied_test", world, nullptr);
}
const std::string kAdam = R"({"type": "Adam", "params": {"lr": 0.05, "weight_decay": 0.01}})";

Tensor rank_slice(const Tensor& global, int rank, int world) {
  int64_t micro = kTiedBatch / world;
  return ops::narrow(global, 0, rank * micro, micro);
}

// Every value of the model's state dict (a tied weight under each of its names).
std::vector<double> train_tied_with_engine(Tying tying, int stage) {
  MpiCommunicator& world = test_world();
  Engine engine(tied_config(stage, world.size(), kAdam), make_tied_lm(tying), world);
  for (int step = 0; step < kTiedSteps; ++step) {
    TokenBatch batch = token_batch(step);
    Tensor logits = engine.forward(rank_slice(batch.tokens, world.rank(), world.size()));
    engine.backward(cross_entropy(logits, rank_slice(batch.targets, world.rank(), world.size())));
    engine.step();
  }
  return concatenated(engine.consolidated_state_dict());
}

// One process doing what N ranks do: each rank's gradient, summed in rank order and scaled by
// 1/N (the engine's reduction), then plain Adam over model.parameters(), which holds the tied
// weight once.
std::vector<double> train_tied_single_process(Tying tying, int world) {
  std::shared_ptr<TiedLM> model = make_tied_lm(tying);
  std::vector<Tensor> params = model->parameters();
  optim::Adam adam(optim::single_group(params, 0.05, 0.01));
  for (int step = 0; step < kTiedSteps; ++step) {
    TokenBatch batch = token_batch(step);
    std::vector<Tensor> summed(params.size());
    for (int rank = 0; rank < world; ++rank) {
      adam.zero_grad();
      Tensor logits = (*model)(rank_slice(batch.tokens, rank, world));
      cross_entropy(logits, rank_slice(batch.targets, rank, world)).backward();
      for (size_t i = 0; i < params.size(); ++i) {
        summed[i] =
            rank == 0 ? ops::clone(params[i].grad()) : ops::add(summed[i], params[i].grad());
      }
    }
    for (size_t i = 0; i < params.size(); ++i)
      params[i].set_grad(ops::mul(summed[i], 1.0 / double(world)));
    adam.step();
  }
  return concatenated(model->state_dict());
}

// The mean loss over the global batch of step 0, in f64, with the embedding weight's element
// `index` moved by `delta`.
double global_loss_f64(TiedLM& model, int64_t index, double delta) {
  autograd::NoGradGuard no_grad;
  Tensor flat = ops::reshape(model.wte->weight, {model.wte->weight.numel()});
  double original = ops::narrow(flat, 0, index, 1).item();
  ops::fill_(ops::narrow(flat, 0, index, 1), original + delta);
  TokenBatch batch = token_batch(0);
  double loss = cross_entropy(model(batch.tokens), batch.targets).item();
  ops::fill_(ops::narrow(flat, 0, index, 1), original);
  return loss;
}

}  // namespace

TEST_CASE(
    "a tied embedding and head train at stages 1-3 bitwise equal to stage 0 and to one "
    "process summing the ranks' gradients alike") {
  int world = test_world().size();
  for (Tying tying : {Tying::shared_parameter, Tying::external_declared}) {
    CAPTURE(tying_name(tying));
    std::vector<double> single = train_tied_single_process(tying, world);
    std::vector<double> stage0 = train_tied_with_engine(tying, 0);
    CHECK(stage0 == single);
    for (int stage : {1, 2, 3}) {
      CAPTURE(stage);
      CHECK(train_tied_with_engine(tying, stage) == stage0);
    }
  }
}

TEST_CASE("at stage 3 a tied weight is released after the step, once no running module reads it") {
  MpiCommunicator& world = test_world();
  for (Tying tying : {Tying::shared_parameter, Tying::external_declared}) {
    CAPTURE(tying_name(tying));
    std::shared_ptr<TiedLM> model = make_tied_lm(tying);
    Engine engine(tied_config(3, world.size(), kAdam), model, world);
    TokenBatch batch = token_batch(0);
    Tensor logits = engine.forward(rank_slice(batch.tokens, world.rank(), world.size()));
    CHECK_FALSE(model->wte->weight.storage()->is_materialized());
    engine.backward(cross_entropy(logits, rank_slice(batch.targets, world.rank(), world.size())));
    engine.step();
    CHECK_FALSE(model->wte->weight.storage()->is_materialized());
    CHECK(engine.plan().total_numel() == model->num_parameters());  // the tied weight once
  }
}

TEST_CASE("the stage-3 gradient of a tied weight sums both uses: finite differences within 1e-4") {
  // Bound: SGD with lr 1 moves the weight by exactly its f32 gradient (up to the rounding of
  // the update, ~1e-7 of the weight); central differences of the f64 loss are good to ~1e-9.
  // Counting one use of the weight only would be off by the other use's whole share.
  MpiCommunicator& world = test_world();
  for (Tying tying : {Tying::shared_parameter, Tying::external_declared}) {
    CAPTURE(tying_name(tying));
    std::shared_ptr<TiedLM> reference = make_tied_lm(tying);
    reference->to(DType::f64);
    std::vector<double> before = make_tied_lm(tying)->wte->weight.to_vector();
    Engine engine(tied_config(3, world.size(), R"({"type": "SGD", "params": {"lr": 1.0}})"),
                  make_tied_lm(tying), world);
    TokenBatch batch = token_batch(0);
    Tensor logits = engine.forward(rank_slice(batch.tokens, world.rank(), world.size()));
    engine.backward(cross_entropy(logits, rank_slice(batch.targets, world.rank(), world.size())));
    engine.step();
    NamedTensors state = engine.consolidated_state_dict();
    std::vector<double> after;
    for (auto& [name, tensor] : state)
      if (name == "wte.weight") after = tensor.to_vector();
    REQUIRE(after.size() == before.size());
    double worst = 0.0, largest = 0.0;
    const double h = 1e-6;
    for (size_t i = 0; i < before.size(); ++i) {
      double expected = (global_loss_f64(*reference, int64_t(i), h) -
                         global_loss_f64(*reference, int64_t(i), -h)) /
                        (2 * h);
      worst = std::max(worst, std::abs((before[i] - after[i]) - expected));
      largest = std::max(largest, std::abs(expected));
    }
    CAPTURE(worst);
    CAPTURE(largest);
    CHECK(largest > 1e-2);
    CHECK(worst <= 1e-4 * largest);
  }
}

TEST_CASE("a tied weight is checkpointed once and resumes at another stage bitwise") {
  MpiCommunicator& world = test_world();
  std::string dir = fmt::format("/tmp/zt-tied-checkpoint-{}", [&] {
    Tensor id = full({1}, double(::getpid()), {.dtype = DType::f64});
    world.broadcast(id, 0);
    return int64_t(id.item());
  }());
  auto train = [&](Engine& engine, int first, int last) {
    for (int step = first; step < last; ++step) {
      TokenBatch batch = token_batch(step);
      Tensor logits = engine.forward(rank_slice(batch.tokens, world.rank(), world.size()));
      engine.backward(cross_entropy(logits, rank_slice(batch.targets, world.rank(), world.size())));
      engine.step();
    }
  };
  Engine straight(tied_config(0, world.size(), kAdam), make_tied_lm(Tying::shared_parameter),
                  world);
  train(straight, 0, 4);
  std::string tag_dir;
  {
    Engine first(tied_config(3, world.size(), kAdam), make_tied_lm(Tying::shared_parameter), world);
    train(first, 0, 2);
    tag_dir = first.save_checkpoint(dir, "tied");
  }
  // As safetensors' save_model: once, under the alphabetically first name, the other recorded.
  SafetensorsContents model_file = load_safetensors(model_states_file(tag_dir));
  CHECK(model_file.contains("head.weight"));
  CHECK_FALSE(model_file.contains("wte.weight"));
  CHECK(model_file.metadata["wte.weight"] == "head.weight");
  CHECK(read_checkpoint(tag_dir).fp32_params.size() == 3);  // wte.weight, hidden.{weight,bias}
  Engine resumed(tied_config(0, world.size(), kAdam), make_tied_lm(Tying::shared_parameter, 99),
                 world);
  resumed.load_checkpoint(dir, "tied");
  train(resumed, 2, 4);
  CHECK(concatenated(resumed.consolidated_state_dict()) ==
        concatenated(straight.consolidated_state_dict()));
  world.barrier();
  if (world.rank() == 0) std::filesystem::remove_all(dir);
}

TEST_CASE(
    "at stage 3 an external parameter read without being declared names the parameter, "
    "its shape and the module reading it") {
  MpiCommunicator& world = test_world();
  Engine engine(tied_config(3, world.size(), kAdam), make_tied_lm(Tying::external_undeclared),
                world);
  TokenBatch batch = token_batch(0);
  std::string message;
  try {
    engine.forward(rank_slice(batch.tokens, world.rank(), world.size()));
  } catch (const std::logic_error& error) {
    message = error.what();
  }
  CAPTURE(message);
  CHECK(message.find("parameter wte.weight of shape [10, 8] has no data") == 0);
  CHECK(message.find("module 'wte' (Embedding)") != std::string::npos);
  CHECK(message.find("read while the root module (TiedLM) ran its forward") != std::string::npos);
  CHECK(message.find("register_external_parameter(module, parameter)") != std::string::npos);
  CHECK(message.find("(read through a view of shape [8, 10])") != std::string::npos);
}

}  // namespace zt::dist
