// Multi-rank tests of optimizer parameter groups ("decay" weights, "no_decay" biases at their own
// lr): ZeRO stages 0-3 give bitwise equal weights although owned slices span both groups; on one
// rank the engine is bitwise optim::Adam over the same groups; at any world size it follows an
// AdamW loop written here in double, one group without decay, within 1e-5; a group at lr 0 stays
// frozen in fp32, fp16 and bf16; and a bad group is refused on every rank alike.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "dist/param_groups.h"
#include "optim/adam.h"
#include "optim/lr_schedules.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

using namespace zt::comm;

namespace zt::dist {
namespace {

using namespace testing;

constexpr int kSteps = 10;
constexpr double kLr = 0.01, kWeightDecay = 0.1, kNoDecayLr = 0.005;
constexpr double kWarmupMinLr = 0.002;
constexpr int64_t kWarmupSteps = 5;

// No clipping, so that one rank is bitwise the plain optimizer; small buckets, so that owned
// slices cut through parameters of both groups.
Config groups_config(int stage, int world, const std::string& precision = "fp32") {
  std::string precision_keys;
  if (precision == "fp16") precision_keys = R"("fp16": {"enabled": true},)";
  if (precision == "bf16") precision_keys = R"("bf16": {"enabled": true},)";
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0, {}
    "optimizer": {{"type": "AdamW", "params": {{"lr": {}, "weight_decay": {}}}}},
    "scheduler": {{"type": "WarmupLR", "params": {{"warmup_min_lr": {}, "warmup_max_lr": {},
                  "warmup_num_steps": {}, "warmup_type": "linear"}}}},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 3000,
                          "stage3_param_persistence_threshold": 0}}
  }})",
                                 kGlobalBatch, precision_keys, kLr, kWeightDecay, kWarmupMinLr, kLr,
                                 kWarmupSteps, stage);
  return parse_config(text, "param_groups_test", world, nullptr);
}

// The GPT recipe's groups with the no_decay group at its own learning rate.
ParamGroupSpecs recipe_groups(nn::Module& model, double no_decay_lr = kNoDecayLr) {
  ParamGroupSpecs groups = weight_decay_groups(model);
  groups[1].options["lr"] = no_decay_lr;
  return groups;
}

struct GroupRun {
  std::vector<double> weights;
  NamedTensors state;
  std::vector<std::vector<double>> group_lrs;  // after each step
};

GroupRun train_with_groups(const Config& config, double no_decay_lr = kNoDecayLr) {
  MpiCommunicator& world = test_world();
  ProcessGrid grid = ProcessGrid::data_parallel(world);
  std::shared_ptr<nn::Module> model = make_mlp();
  Engine engine(config, model, grid.data_group(), recipe_groups(*model, no_decay_lr));
  int64_t micro = kGlobalBatch / world.size();
  GroupRun run;
  for (int step = 0; step < kSteps; ++step) {
    GlobalBatch batch = global_batch(step);
    int64_t first = world.rank() * micro;
    Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro)).to(DType::f32);
    engine.backward(cross_entropy(logits, ops::narrow(batch.targets, 0, first, micro)));
    engine.step();
    run.group_lrs.push_back(engine.get_group_lrs());
  }
  run.state = engine.consolidated_state_dict();
  run.weights = concatenated(run.state);
  return run;
}

// The linear warm-up, from its definition: update k (0-based) uses iteration k - 1, where
// iteration -1 (before the schedule's first step) sits at the minimum.
double warmup_lr(int update) {
  double fraction = std::clamp(double(update - 1) / double(kWarmupSteps), 0.0, 1.0);
  return kWarmupMinLr + (kLr - kWarmupMinLr) * fraction;
}

bool is_bias(const std::string& name) {
  return name.ends_with("bias");
}

// AdamW written out in double on one process over the whole global batch: weights decay at
// kWeightDecay unless `biases_decay` is false, biases step at kNoDecayLr / kLr of the rate.
NamedTensors reference_adamw(bool biases_decay, double bias_lr_ratio) {
  std::shared_ptr<nn::Module> model = make_mlp();
  NamedTensors params = model->named_parameters();
  std::vector<std::vector<double>> master, exp_avg, exp_avg_sq;
  for (auto& [name, param] : params) {
    master.push_back(param.to_vector());
    exp_avg.emplace_back(size_t(param.numel()), 0.0);
    exp_avg_sq.emplace_back(size_t(param.numel()), 0.0);
  }
  const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  for (int step = 0; step < kSteps; ++step) {
    GlobalBatch batch = global_batch(step);
    model->zero_grad();
    cross_entropy((*model)(batch.inputs), batch.targets).backward();
    double bias_correction1 = 1.0 - std::pow(beta1, step + 1);
    double bias_correction2 = 1.0 - std::pow(beta2, step + 1);
    for (size_t p = 0; p < params.size(); ++p) {
      bool bias = is_bias(params[p].first);
      double lr = warmup_lr(step) * (bias ? bias_lr_ratio : 1.0);
      double decay = bias && !biases_decay ? 0.0 : kWeightDecay;
      std::vector<double> grad = params[p].second.grad().to_vector();
      for (size_t i = 0; i < grad.size(); ++i) {
        double& w = master[p][i];
        w -= lr * decay * w;
        exp_avg[p][i] = beta1 * exp_avg[p][i] + (1.0 - beta1) * grad[i];
        exp_avg_sq[p][i] = beta2 * exp_avg_sq[p][i] + (1.0 - beta2) * grad[i] * grad[i];
        w -= lr * (exp_avg[p][i] / bias_correction1) /
             (std::sqrt(exp_avg_sq[p][i] / bias_correction2) + eps);
      }
      autograd::NoGradGuard no_grad;
      ops::copy_(params[p].second, from_values(master[p], params[p].second.sizes()));
    }
  }
  NamedTensors result;
  for (size_t p = 0; p < params.size(); ++p)
    result.emplace_back(params[p].first,
                        from_values(master[p], params[p].second.sizes(), {.dtype = DType::f64}));
  return result;
}

// The values of the parameters whose names `select` accepts, concatenated.
std::vector<double> selected(const NamedTensors& state, bool (*select)(const std::string&)) {
  NamedTensors chosen;
  for (auto& [name, tensor] : state)
    if (select(name)) chosen.emplace_back(name, tensor);
  return concatenated(chosen);
}

}  // namespace

TEST_CASE("with decay and no_decay groups, ZeRO stages 1-3 give weights bitwise equal to stage 0") {
  // Bound: bitwise. Each element is updated with its own group's constants whichever rank owns
  // it and however the owned slice cuts the groups.
  int world = test_world().size();
  GroupRun stage0 = train_with_groups(groups_config(0, world));
  for (int stage : {1, 2, 3}) {
    CAPTURE(stage);
    CHECK(train_with_groups(groups_config(stage, world)).weights == stage0.weights);
  }
}

TEST_CASE("parameter groups: the schedule scales each group's lr, and one rank is optim::Adam") {
  int world = test_world().size();
  GroupRun engine_run = train_with_groups(groups_config(2, world));
  for (int step = 0; step < kSteps; ++step) {
    CAPTURE(step);
    REQUIRE(engine_run.group_lrs[size_t(step)].size() == 2);
    // After update `step`, the schedule has set the rate of update step + 1.
    CHECK(engine_run.group_lrs[size_t(step)][0] == doctest::Approx(warmup_lr(step + 1)));
    CHECK(engine_run.group_lrs[size_t(step)][1] ==
          doctest::Approx(warmup_lr(step + 1) * kNoDecayLr / kLr));
  }
  if (world != 1) return;  // more ranks sum the batch in another order
  // Bound: bitwise. One rank reduces nothing, and the flat runs update with the same constants.
  std::shared_ptr<nn::Module> model = make_mlp();
  std::vector<Tensor> weights, biases;
  for (auto& [name, param] : model->named_parameters())
    (is_bias(name) ? biases : weights).push_back(param);
  optim::Adam adam({{weights, kLr, kWeightDecay}, {biases, kNoDecayLr, 0.0, kNoDecayLr / kLr}});
  optim::WarmupLR schedule(adam, {.warmup_min_lr = kWarmupMinLr,
                                  .warmup_max_lr = kLr,
                                  .warmup_num_steps = kWarmupSteps,
                                  .warmup_type = optim::WarmupType::linear});
  for (int step = 0; step < kSteps; ++step) {
    GlobalBatch batch = global_batch(step);
    adam.zero_grad();
    cross_entropy((*model)(batch.inputs), batch.targets).backward();
    adam.step();
    schedule.step();
  }
  CHECK(engine_run.weights == concatenated(model->state_dict()));
}

TEST_CASE("parameter groups follow AdamW in double with undecayed biases within 1e-5") {
  int world = test_world().size();
  GroupRun engine_run = train_with_groups(groups_config(3, world));
  NamedTensors grouped = reference_adamw(/*biases_decay=*/false, kNoDecayLr / kLr);
  NamedTensors ungrouped = reference_adamw(/*biases_decay=*/true, 1.0);
  double error = relative_error(engine_run.weights, concatenated(grouped));
  MESSAGE(fmt::format("relative error against the reference: {:.2e}", error));
  CHECK(error < 1e-5);
  // The groups matter: the biases are far from those of the run without groups.
  double bias_difference =
      relative_error(selected(engine_run.state, is_bias), selected(ungrouped, is_bias));
  MESSAGE(fmt::format("biases against the ungrouped reference: {:.2e}", bias_difference));
  CHECK(bias_difference > 1e-3);
}

TEST_CASE("a group at lr 0 keeps its parameters bitwise at every stage in fp32, fp16 and bf16") {
  int world = test_world().size();
  for (const char* precision : {"fp32", "fp16", "bf16"}) {
    for (int stage : {0, 1, 2, 3}) {
      CAPTURE(precision);
      CAPTURE(stage);
      Config config = groups_config(stage, world, precision);
      DType dtype = config.fp16.enabled   ? DType::f16
                    : config.bf16.enabled ? DType::bf16
                                          : DType::f32;
      std::shared_ptr<nn::Module> initial = make_mlp();
      initial->to(dtype);
      GroupRun run = train_with_groups(config, /*no_decay_lr=*/0.0);
      CHECK(selected(run.state, is_bias) == selected(initial->state_dict(), is_bias));
      CHECK(
          selected(run.state, [](const std::string& name) { return !is_bias(name); }) !=
          selected(initial->state_dict(), [](const std::string& name) { return !is_bias(name); }));
    }
  }
}

TEST_CASE("a parameter group with an unknown or invalid hyperparameter is refused, naming it") {
  MpiCommunicator& world = test_world();
  ProcessGrid grid = ProcessGrid::data_parallel(world);
  auto build = [&](const std::map<std::string, double>& options) {
    std::shared_ptr<nn::Module> model = make_mlp();
    ParamGroupSpecs groups = weight_decay_groups(*model);
    groups[1].options = options;
    Engine engine(groups_config(1, world.size()), model, grid.data_group(), groups);
  };
  CHECK_THROWS_WITH_AS(build({{"betas", 0.9}}),
                       doctest::Contains("parameter group \"no_decay\": unknown hyperparameter "
                                         "\"betas\""),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(build({{"weight_decay", -0.5}}),
                       doctest::Contains("parameter group \"no_decay\": weight_decay -0.5 is "
                                         "invalid"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(build({{"lr", std::nan("")}}),
                       doctest::Contains("parameter group \"no_decay\": lr nan is invalid"),
                       std::invalid_argument);
}

}  // namespace zt::dist
