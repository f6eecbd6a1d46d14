// The config doctor's activation prediction against the allocator: for the MNIST CNN, the
// replayed peak of dist/config_doctor_activations.h within 1% of the `activation` peak one
// engine step measures, across micro-batches, precisions and checkpointing (5% with
// cpu_checkpointing); and a budget the config's micro-batch does not fit gets a smaller one
// (the global batch kept by accumulation) that trains under that limit.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "apps/mnist_common.h"
#include "autograd/checkpointing_options.h"
#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/config_doctor.h"
#include "dist/engine.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::dist {
namespace {
using testing::test_world;

// Stage 0 with Adam: `micro` samples per rank and micro-step, `accumulation` micro-steps.
Config cnn_config(int64_t micro, bool bf16, int64_t accumulation = 1) {
  std::string text = fmt::format(
      R"({{"train_batch_size": {}, "gradient_accumulation_steps": {}, "steps_per_print": 0, {}
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.001}}}},
    "zero_optimization": {{"stage": 0}}}})",
      micro * accumulation * test_world().size(), accumulation,
      bf16 ? R"("bf16": {"enabled": true},)" : "");
  return parse_config(text, "doctor_activations_test", test_world().size(), nullptr);
}

// The CNN run_stages checkpoints in `segments` groups (0: none); the doctor's "checkpointing"
// is every stage its own segment.
constexpr int64_t kAllStages = apps::MnistCnn::kStages;

void train_steps(Engine& engine, int64_t micro, int steps, int64_t* activation_peak = nullptr) {
  for (int step = 0; step < steps; ++step) {
    for (int64_t m = 0; m < engine.config().gradient_accumulation_steps; ++m) {
      Generator generator(uint64_t(step * 131 + m + 1));
      Tensor images = randn({micro, 1, 28, 28}, {}, &generator);
      std::vector<int64_t> labels(static_cast<size_t>(micro), 0);
      for (int64_t i = 0; i < micro; ++i) labels[size_t(i)] = (i + step) % 10;
      if (activation_peak) cpu_allocator().accounting().reset_peak();
      Tensor logits = engine.forward(images).to(DType::f32);
      engine.backward(cross_entropy(logits, from_int64(labels, {micro})));
      if (activation_peak)
        *activation_peak = cpu_allocator().accounting().stats().peak(MemoryTag::activation);
      engine.step();
    }
  }
}

int64_t measured_peak(int64_t micro, int64_t segments, bool bf16) {
  auto model = apps::make_mnist_model("cnn", segments);
  Engine engine(cnn_config(micro, bf16), model, test_world());
  int64_t peak = 0;
  train_steps(engine, micro, 2, &peak);  // the second step's, after every buffer exists
  return peak;
}

ModelShape cnn_shape(const Config& config, int world, int64_t element_bytes) {
  ModelShape shape = model_shape(*apps::make_mnist_model("cnn"), config.zero_optimization, world);
  shape.activation_ops = [element_bytes](bool checkpointed) {
    return mnist_cnn_activations({}, element_bytes, checkpointed ? kAllStages : 0);
  };
  return shape;
}

}  // namespace

TEST_CASE("config doctor: the MNIST CNN's activation peak within 1% of the measured one") {
  struct Case {
    bool bf16;
    int64_t segments;
    std::vector<int64_t> micro_batches;
  };
  // 64 samples peak at dropout1 (the pooling stage's input still held by run_stages), fewer
  // in backward.
  for (const Case& c :
       {Case{false, 0, {1, 32}}, Case{false, 2, {8, 64}}, Case{false, kAllStages, {1, 32}},
        Case{true, 0, {1, 32, 64}}, Case{true, kAllStages, {16, 64}}}) {
    for (int64_t micro : c.micro_batches) {
      CAPTURE(c.bf16);
      CAPTURE(c.segments);
      CAPTURE(micro);
      int64_t predicted =
          predict_activation_peak(mnist_cnn_activations({}, c.bf16 ? 2 : 4, c.segments), micro,
                                  {.enabled = c.segments > 0});
      int64_t measured = measured_peak(micro, c.segments, c.bf16);
      INFO("predicted ", predicted, " measured ", measured);
      CHECK(std::abs(double(predicted - measured)) <= 0.01 * double(measured));
    }
  }
  // Without checkpointing's savings the replay must see more: the two differ.
  CHECK(predict_activation_peak(mnist_cnn_activations({}, 4, 0), 32, {}) >
        predict_activation_peak(mnist_cnn_activations({}, 4, kAllStages), 32, {.enabled = true}));
}

TEST_CASE("config doctor: cpu_checkpointing's saved inputs leave the device peak") {
  configure_checkpointing({.partition_activations = true, .cpu_checkpointing = true});
  int64_t measured = measured_peak(32, kAllStages, false);
  configure_checkpointing({});
  int64_t predicted = predict_activation_peak(mnist_cnn_activations({}, 4, kAllStages), 32,
                                              {.enabled = true, .cpu_checkpointing = true});
  int64_t on_device =
      predict_activation_peak(mnist_cnn_activations({}, 4, kAllStages), 32, {.enabled = true});
  INFO("predicted ", predicted, " measured ", measured, " inputs on the device ", on_device);
  CHECK(std::abs(double(predicted - measured)) <= 0.05 * double(measured));
  CHECK(predicted <= on_device);
}

TEST_CASE("config doctor: the micro-batch it suggests trains under the budget") {
  const int world = test_world().size();
  const int64_t per_rank = 64;
  Config config = cnn_config(per_rank, false);
  ModelShape shape = cnn_shape(config, world, 4);
  // What the doctor does not predict: the gradients whole before the all-reduce (measured at
  // 1.5 B Psi beyond the gradient buffer), the images and labels: 2 B Psi.
  const int64_t reserve = 2 * 4 * shape.parameter_count;
  Layout half{.stage = 0, .micro_batch = per_rank / 2};
  RankPrediction as_given = predict_rank(shape, config, world);
  RankPrediction halved = predict_rank(shape, with_layout(config, half), world);
  REQUIRE(halved.activation_bytes < as_given.activation_bytes);
  // 64 samples fit in two micro-steps of 32 (stage 0 is the least traffic).
  const int64_t budget = halved.device_bytes() + reserve;
  std::optional<Suggestion> suggestion = suggest_layout(shape, config, world, budget, reserve);
  REQUIRE(suggestion.has_value());
  INFO(suggestion->why);
  CHECK(suggestion->layout.str() == "stage 0, micro-batch 32");
  CHECK(suggestion->why.find("stage 0, micro-batch 64: needs") != std::string::npos);
  Config suggested = with_layout(config, suggestion->layout);
  CHECK(suggested.train_micro_batch_size_per_gpu == 32);
  CHECK(suggested.gradient_accumulation_steps == 2);

  MemoryAccounting& accounting = cpu_allocator().accounting();
  auto trains_within = [&](const Config& run) {
    const int64_t base = accounting.stats().device_live_bytes;
    accounting.set_limit(base + budget);
    bool trained = true;
    try {
      Engine engine(run, apps::make_mnist_model("cnn"), test_world());
      train_steps(engine, run.train_micro_batch_size_per_gpu, 2);
    } catch (const OutOfMemoryError&) {
      trained = false;
    }
    accounting.set_limit(0);
    return trained;
  };
  CHECK(trains_within(suggested));
  // The budget binds: the config as given (one micro-step of 64) runs out of memory under it.
  CHECK_FALSE(trains_within(config));
  // A budget under the model states gets no suggestion, each choice's shortfall named.
  std::string why;
  CHECK_FALSE(suggest_layout(shape, config, world, reserve, reserve, &why).has_value());
  CHECK(why.find("micro-batch 1, activation checkpointing: needs") != std::string::npos);
}

}  // namespace zt::dist
