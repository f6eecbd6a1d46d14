// Multi-rank tests of mixed-precision training: fp16/bf16 model states against the ZeRO paper's
// 2 + 2 + 12 bytes per parameter, ZeRO stages 1-3 against stage 0, 16-bit training against the
// fp32 run of the same steps, and overflow handling when one rank's gradient holds an inf.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

using namespace zt::comm;

namespace zt::dist {
namespace {

using namespace testing;

constexpr int kMixedSteps = 12;

// precision: "fp32", "fp16" or "bf16"; `fp16_block` replaces the default fp16 settings.
Config mixed_config(int stage, const std::string& precision, int world,
                    const std::string& fp16_block = R"({"enabled": true})") {
  std::string precision_keys;
  if (precision == "fp16") precision_keys = fmt::format(R"("fp16": {},)", fp16_block);
  if (precision == "bf16") precision_keys = R"("bf16": {"enabled": true},)";
  std::string text = fmt::format(R"({{
    "train_batch_size": {},
    "gradient_clipping": 1.0,
    "steps_per_print": 0,
    {}
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.005}}}},
    "scheduler": {{"type": "WarmupLR", "params": {{"warmup_num_steps": 100,
                  "warmup_min_lr": 0.002, "warmup_max_lr": 0.01, "warmup_type": "linear"}}}},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 20000,
                          "stage3_param_persistence_threshold": 0}}
  }})",
                                 kGlobalBatch, precision_keys, stage);
  return parse_config(text, "mixed_precision_test", world, nullptr);
}

struct MixedRun {
  std::vector<double> weights;
  std::vector<double> losses;
  std::vector<double> scales;          // loss scale after each step
  std::vector<double> learning_rates;  // after each step
  std::vector<bool> overflowed;
  std::vector<std::vector<double>> weights_after_step;  // only when asked for
  ModelStateReport report;
  int64_t payload_bytes_per_step = 0;
  int64_t skipped_steps = 0;
};

struct MixedOptions {
  int inject_inf_at_step = -1;  // the last rank's gradient gets an inf at this step
  bool keep_weights_per_step = false;
};

MixedRun train_mixed(const Config& config, MixedOptions options = {}) {
  MpiCommunicator& world = test_world();
  ProcessGrid grid = ProcessGrid::data_parallel(world);
  Engine engine(config, make_mlp(), grid.data_group());
  int64_t micro = kGlobalBatch / world.size();
  int64_t first = world.rank() * micro;
  // On the last rank, at the chosen step, the gradient reaching the first layer's output gets
  // an inf at one element, so that layer's weight and bias gradients overflow there, as they
  // would after an overflowing activation gradient. (Works at stage 3 too, where the weights
  // exist only inside the module's forward and backward.)
  bool armed = false;
  nn::Module& first_layer = *engine.module().named_modules().at(1).second;
  first_layer.register_forward_hook(
      [&armed](nn::Module&, const nn::TensorList&, const nn::TensorList& outputs) {
        if (!armed) return;
        outputs.at(0).register_hook([](const Tensor& grad) {
          Tensor poisoned = ops::clone(grad);
          ops::fill_(ops::narrow(ops::reshape(poisoned, {poisoned.numel()}), 0, 3, 1),
                     std::numeric_limits<double>::infinity());
          return poisoned;
        });
      });
  MixedRun run;
  for (int step = 0; step < kMixedSteps; ++step) {
    armed = step == options.inject_inf_at_step && world.rank() == world.size() - 1;
    GlobalBatch batch = global_batch(step);
    Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro)).to(DType::f32);
    Tensor loss = cross_entropy(logits, ops::narrow(batch.targets, 0, first, micro));
    engine.backward(loss);
    engine.step();
    run.losses.push_back(engine.last_global_loss());
    run.scales.push_back(engine.loss_scale());
    run.learning_rates.push_back(engine.get_lr());
    run.overflowed.push_back(engine.last_step_overflowed());
    if (options.keep_weights_per_step)
      run.weights_after_step.push_back(concatenated(engine.consolidated_state_dict()));
    if (step == 0) {
      run.payload_bytes_per_step =
          engine.data_parallel_communicator().stats().total_payload_bytes();
      run.report = engine.model_state_report();
    }
  }
  run.skipped_steps = engine.skipped_steps();
  run.weights = concatenated(engine.consolidated_state_dict());
  return run;
}

// Model-state bytes per rank of mixed-precision Adam by the ZeRO paper (section 5, Figure 1):
// 2 bytes of fp16 parameters, 2 of gradients and K = 12 of optimizer state (fp32 master
// weights, momentum, variance) per parameter, of which each stage partitions more over N ranks.
struct PaperBytes {
  double params, grads, optimizer;
  double total() const { return params + grads + optimizer; }
};
PaperBytes paper_bytes(int stage, double psi, double n) {
  switch (stage) {
    case 0:
      return {2 * psi, 2 * psi, 12 * psi};
    case 1:
      return {2 * psi, 2 * psi, 12 * psi / n};
    case 2:
      return {2 * psi, 2 * psi / n, 12 * psi / n};
    default:
      return {2 * psi / n, 2 * psi / n, 12 * psi / n};
  }
}

}  // namespace

TEST_CASE("the formula reproduces the ZeRO paper's Figure 1 (7.5B parameters, 64 GPUs)") {
  // Figure 1: 120 GB, 31.4 GB, 16.6 GB and 1.9 GB per device for the baseline and P_os, P_os+g,
  // P_os+g+p.
  const double expected_gb[] = {120.0, 31.4, 16.6, 1.9};
  for (int stage = 0; stage <= 3; ++stage) {
    CAPTURE(stage);
    CHECK(paper_bytes(stage, 7.5e9, 64).total() / 1e9 ==
          doctest::Approx(expected_gb[stage]).epsilon(0.01));
  }
}

TEST_CASE("with fp16 and Adam, per-rank model states equal 2+2+12 Psi partitioned per stage") {
  int world = test_world().size();
  for (int stage : {0, 1, 2, 3}) {
    CAPTURE(stage);
    MixedRun run = train_mixed(mixed_config(stage, "fp16", world));
    const ModelStateReport& report = run.report;
    INFO(report.str());
    double psi = double(report.parameter_count);
    PaperBytes expected = paper_bytes(stage, psi, world);
    MESSAGE(fmt::format(
        "stage {} at N = {}, Psi = {}: {:.0f} + {:.0f} + {:.0f} bytes by the paper, "
        "{} + {} + {} measured",
        stage, world, report.parameter_count, expected.params, expected.grads, expected.optimizer,
        report.param_bytes, report.grad_bytes, report.optim_state_bytes));
    // Padding adds at most N - 1 elements to each of the MLP's at most 6 groups.
    double padding = 6.0 * double(world - 1);
    CHECK(std::abs(double(report.param_bytes) - expected.params) <= 2 * padding + 1);
    CHECK(std::abs(double(report.grad_bytes) - expected.grads) <= 2 * padding + 1);
    CHECK(std::abs(double(report.optim_state_bytes) - expected.optimizer) <= 12 * padding + 1);
    // Traffic is 16-bit too: 2 Psi (N-1)/N elements of 2 bytes at stages 0-2, 3 at stage 3.
    double volume = (stage == 3 ? 3.0 : 2.0) * 2.0 * psi * double(world - 1) / double(world);
    if (world == 1)
      CHECK(run.payload_bytes_per_step == 0);
    else
      CHECK(double(run.payload_bytes_per_step) == doctest::Approx(volume).epsilon(0.01));
  }
}

TEST_CASE("fp16 and bf16: ZeRO stages 1-3 give weights bitwise equal to stage 0") {
  // Bound: bitwise, as in fp32: every stage sums the same 16-bit gradients in rank order in f32,
  // rounds once, and updates the same fp32 master elements with the same rule.
  int world = test_world().size();
  for (std::string precision : {"fp16", "bf16"}) {
    CAPTURE(precision);
    MixedRun stage0 = train_mixed(mixed_config(0, precision, world));
    for (int stage : {1, 2, 3}) {
      CAPTURE(stage);
      MixedRun zero = train_mixed(mixed_config(stage, precision, world));
      CHECK(zero.weights == stage0.weights);
      CHECK(zero.losses == stage0.losses);
    }
  }
}

TEST_CASE("fp16 and bf16 training follow the fp32 run of the same steps") {
  // Bounds from the formats' precision: weights are rounded to 16 bits after every update, so
  // they differ from fp32 by about half a unit in the last place (2^-11 fp16, 2^-8 bf16), plus
  // the drift that rounded gradients add over 12 steps.
  int world = test_world().size();
  MixedRun fp32 = train_mixed(mixed_config(2, "fp32", world));
  for (auto [name, bound] : {std::pair{"fp16", 5e-3}, std::pair{"bf16", 2e-2}}) {
    std::string precision = name;
    CAPTURE(precision);
    MixedRun mixed = train_mixed(mixed_config(2, precision, world));
    double weight_error = relative_error(mixed.weights, fp32.weights);
    MESSAGE(fmt::format("{}: weights within {:.2e} of fp32, final loss {:.5f} vs {:.5f}", precision,
                        weight_error, mixed.losses.back(), fp32.losses.back()));
    CHECK(weight_error < bound);
    CHECK(mixed.skipped_steps == 0);
    for (size_t i = 0; i < fp32.losses.size(); ++i)
      CHECK(mixed.losses[i] == doctest::Approx(fp32.losses[i]).epsilon(10 * bound));
  }
}

TEST_CASE("an inf in one rank's gradient skips the step on every rank and halves the scale") {
  int world = test_world().size();
  const std::string fp16 =
      R"({"enabled": true, "initial_scale_power": 8, "loss_scale_window": 4, "hysteresis": 1})";
  constexpr int kInfStep = 5;
  for (int stage : {0, 2, 3}) {
    CAPTURE(stage);
    MixedRun clean = train_mixed(mixed_config(stage, "fp16", world, fp16));
    MixedRun run = train_mixed(mixed_config(stage, "fp16", world, fp16),
                               {.inject_inf_at_step = kInfStep, .keep_weights_per_step = true});
    CHECK(run.skipped_steps == 1);
    for (int step = 0; step < kMixedSteps; ++step)
      CHECK(run.overflowed[size_t(step)] == (step == kInfStep));
    // The step left every weight as it was (consolidated: the same on every rank) ...
    CHECK(run.weights_after_step[kInfStep] == run.weights_after_step[kInfStep - 1]);
    // ... and the schedule where it was (the warmup moves the rate on every other step).
    CHECK(run.learning_rates[kInfStep] == run.learning_rates[kInfStep - 1]);
    CHECK(run.learning_rates[kInfStep + 1] != run.learning_rates[kInfStep]);
    // Scale: 256, doubled after 4 clean steps (steps 0-3), halved by the overflow at step 5,
    // doubled again 4 clean steps after it (step 9).
    CHECK(clean.scales[2] == 256);
    CHECK(clean.scales[3] == 512);
    CHECK(run.scales[4] == 512);
    CHECK(run.scales[kInfStep] == 256);
    CHECK(run.scales[8] == 256);
    CHECK(run.scales[9] == 512);
    // Training goes on: the steps after the skipped one update the weights.
    CHECK(run.weights_after_step[kInfStep + 1] != run.weights_after_step[kInfStep]);
    for (double value : run.weights) CHECK(std::isfinite(value));
  }
}

TEST_CASE("hysteresis 2: the first overflow keeps the scale, the second halves it") {
  int world = test_world().size();
  const std::string fp16 =
      R"({"enabled": true, "initial_scale_power": 8, "loss_scale_window": 1000, "hysteresis": 2})";
  Config config = mixed_config(1, "fp16", world, fp16);
  MixedRun once = train_mixed(config, {.inject_inf_at_step = 3});
  CHECK(once.skipped_steps == 1);
  CHECK(once.scales.back() == 256);  // absorbed by hysteresis
  MpiCommunicator& comm = test_world();
  ProcessGrid grid = ProcessGrid::data_parallel(comm);
  Engine engine(config, make_mlp(), grid.data_group());
  std::vector<double> scales;
  for (int step = 0; step < 3; ++step) {
    GlobalBatch batch = global_batch(step);
    int64_t micro = kGlobalBatch / comm.size();
    Tensor logits =
        engine.forward(ops::narrow(batch.inputs, 0, comm.rank() * micro, micro)).to(DType::f32);
    Tensor loss = cross_entropy(logits, ops::narrow(batch.targets, 0, comm.rank() * micro, micro));
    // Every rank overflows at steps 0 and 1.
    if (step < 2) loss = mul(loss, std::numeric_limits<double>::infinity());
    engine.backward(loss);
    engine.step();
    scales.push_back(engine.loss_scale());
  }
  CHECK(scales == std::vector<double>{256, 128, 128});
  CHECK(engine.skipped_steps() == 2);
  CHECK(engine.global_steps() == 3);
}

}  // namespace zt::dist
