// ds_config.json: mixed precision, features not implemented yet, activation checkpointing,
// warnings for unknown and deprecated keys, number spellings, the repository's configs, and
// the optimizer and schedule built from a config (parsing rules: tests/dist/test_config.cpp).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/factory.h"
#include "dist/config.h"
#include "dist/config_builders.h"
#include "dist/json_comments.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::dist;
using namespace zt::testing;

TEST_CASE("fp16 and bf16 enable mixed precision, one at a time") {
  Config fp16 = parse(with_batch(R"("fp16": {"enabled": true, "loss_scale": 0,
      "initial_scale_power": 12, "loss_scale_window": 50, "hysteresis": 3,
      "consecutive_hysteresis": true, "min_loss_scale": 4})"));
  CHECK(fp16.fp16.enabled);
  CHECK_FALSE(fp16.bf16.enabled);
  CHECK(fp16.fp16.initial_scale_power == 12);
  CHECK(fp16.fp16.loss_scale_window == 50);
  CHECK(fp16.fp16.hysteresis == 3);
  CHECK(fp16.fp16.consecutive_hysteresis);
  CHECK(fp16.fp16.min_loss_scale == 4.0);
  CHECK(parse(with_batch("\"bf16\": {\"enabled\": true}")).bf16.enabled);
  CHECK(parse(with_batch("\"bfloat16\": {\"enabled\": true}")).bf16.enabled);
  CHECK(error_of(with_batch("\"fp16\": {\"enabled\": true, \"fp16_master_weights_and_grads\": "
                            "true}")) != "(no error)");
}

TEST_CASE("features not implemented yet are errors when asked for, fine when off") {
  CHECK(error_of(with_batch("\"fp16\": {\"enabled\": true}, \"bf16\": {\"enabled\": true}")) ==
        "ds_config.json: bf16: bfloat16 and fp16 modes cannot be simultaneously enabled");
  CHECK(contains(error_of(with_batch("\"bf16\": {}, \"bfloat16\": {}")),
                 "deprecated alias of \"bf16\""));
  // DeepSpeed asserts when a deprecated key and its replacement are both set.
  CHECK(contains(error_of(with_batch("\"zero_optimization\": {\"cpu_offload\": false, "
                                     "\"offload_optimizer\": {\"device\": \"none\"}}")),
                 "zero_optimization.cpu_offload: deprecated; set it or \"offload_optimizer\""));
  CHECK(contains(
      error_of(with_batch("\"zero_optimization\": {\"zero_quantized_weights\": true}")),
      "zero_optimization.zero_quantized_weights: true: quantized parameter all-gathers are not "
      "implemented"));
  CHECK(contains(error_of(with_batch("\"tensorboard\": {\"enabled\": true, \"job_name\": \"\"}")),
                 "ds_config.json: tensorboard.job_name: expected a non-empty name"));
  CHECK(contains(error_of(with_batch("\"dump_state\": true")),
                 "dump_state: true is not implemented yet"));
  CHECK(contains(error_of(with_batch("\"optimizer\": {\"type\": \"Adam\", \"params\": "
                                     "{\"amsgrad\": true}}")),
                 "optimizer.params.amsgrad: true is not implemented yet"));

  std::vector<std::string> warnings;
  Config off = parse(with_batch(R"("fp16": {"enabled": false, "loss_scale_window": 500},
      "bf16": {"enabled": false},
      "activation_checkpointing": {"partition_activations": false, "number_checkpoints": null},
      "zero_optimization": {"offload_optimizer": {"device": "none", "pin_memory": true},
                            "cpu_offload_param": false,
                            "sub_group_size": 1e9},
      "tensorboard": {"enabled": false, "output_path": "logs/"},
      "memory_breakdown": false)"),
                     1, &warnings);
  CHECK(warnings.empty());
  CHECK(off.fp16.loss_scale_window == 500);
  CHECK(off.zero_optimization.offload_optimizer.device == "none");
}

TEST_CASE("activation_checkpointing: DeepSpeed's defaults, each key read, its rules") {
  std::vector<std::string> warnings;
  Config defaults = parse(with_batch(R"("activation_checkpointing": {})"), 1, &warnings);
  const ActivationCheckpointingConfig& unset = defaults.activation_checkpointing;
  CHECK(!unset.partition_activations);
  CHECK(!unset.cpu_checkpointing);
  CHECK(!unset.contiguous_memory_optimization);
  CHECK(!unset.synchronize_checkpoint_boundary);
  CHECK(!unset.profile);
  CHECK(unset.number_checkpoints == 0);
  CHECK(warnings.empty());

  Config null_count = parse(
      with_batch(R"("activation_checkpointing": {"number_checkpoints": null, "profile": true})"), 1,
      &warnings);
  CHECK(null_count.activation_checkpointing.number_checkpoints == 0);
  CHECK(null_count.activation_checkpointing.profile);
  CHECK(warnings.empty());

  Config all = parse(with_batch(R"("activation_checkpointing": {
      "partition_activations": true, "cpu_checkpointing": true,
      "contiguous_memory_optimization": true, "number_checkpoints": 4,
      "synchronize_checkpoint_boundary": true, "profile": true})"),
                     1, &warnings);
  const ActivationCheckpointingConfig& set = all.activation_checkpointing;
  CHECK(set.partition_activations);
  CHECK(set.cpu_checkpointing);
  CHECK(set.contiguous_memory_optimization);
  CHECK(set.synchronize_checkpoint_boundary);
  CHECK(set.profile);
  CHECK(set.number_checkpoints == 4);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0] ==
        "ds_config.json: activation_checkpointing.partition_activations: no model parallelism "
        "(tensor parallel size 1); activations are not partitioned");

  Config count_only =
      parse(with_batch(R"("activation_checkpointing": {"number_checkpoints": 2e0})"), 1, nullptr);
  CHECK(count_only.activation_checkpointing.number_checkpoints == 2);

  CHECK(error_of(with_batch(R"("activation_checkpointing": {"number_checkpoints": 0})")) ==
        "ds_config.json: activation_checkpointing.number_checkpoints: expected an integer >= 1, "
        "got 0");
  CHECK(error_of(with_batch(R"("activation_checkpointing": {"profile": "yes"})")) ==
        "ds_config.json: activation_checkpointing.profile: expected true or false, got \"yes\"");
  CHECK(error_of(with_batch(R"("activation_checkpointing": {"contiguous_memory_optimization": true,
      "number_checkpoints": 4})")) ==
        "ds_config.json: activation_checkpointing.contiguous_memory_optimization: needs "
        "\"partition_activations\": true");
  // Without number_checkpoints DeepSpeed loads it (its assert waits for checkpointing.configure).
  CHECK(error_of(with_batch(R"("activation_checkpointing": {"contiguous_memory_optimization": true,
      "partition_activations": true})")) == "(no error)");
  CHECK(error_of(with_batch(R"("activation_checkpointing": {"cpu_checkpointing": true})")) ==
        "ds_config.json: activation_checkpointing.cpu_checkpointing: needs "
        "\"partition_activations\": true");

  warnings.clear();
  parse(with_batch(R"("activation_checkpointing": {"number_checkpoint": 4})"), 1, &warnings);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0] ==
        "ds_config.json: activation_checkpointing.number_checkpoint: unknown key, ignored (did "
        "you mean \"number_checkpoints\"?)");
}

TEST_CASE("unknown keys are warnings naming their path, with the nearest known key") {
  std::vector<std::string> warnings;
  Config config = parse(with_batch(R"("train_batch_sise": 1, "my_setting": {"a": 1},
      "zero_optimization": {"stage": 2, "stage3_prefetch_bucket_sise": 10},
      "fp16": {"enabled": false, "initial_scale_pow": 8})"),
                        1, &warnings);
  CHECK(config.zero_optimization.stage == 2);
  CHECK(config.zero_optimization.stage3_prefetch_bucket_size == 50'000'000);
  REQUIRE(warnings.size() == 4);
  CHECK(warnings[0] ==
        "ds_config.json: zero_optimization.stage3_prefetch_bucket_sise: unknown key, ignored "
        "(did you mean \"stage3_prefetch_bucket_size\"?)");
  CHECK(warnings[1] ==
        "ds_config.json: fp16.initial_scale_pow: unknown key, ignored (did you mean "
        "\"initial_scale_power\"?)");
  CHECK(warnings[2] == "ds_config.json: my_setting: unknown key, ignored");
  CHECK(warnings[3] ==
        "ds_config.json: train_batch_sise: unknown key, ignored (did you mean "
        "\"train_batch_size\"?)");
}

TEST_CASE("deprecated forms and \"auto\" are accepted with a warning") {
  std::vector<std::string> warnings;
  Config legacy = parse(with_batch("\"zero_optimization\": true"), 1, &warnings);
  CHECK(legacy.zero_optimization.stage == 1);
  REQUIRE(warnings.size() == 1);
  CHECK(contains(warnings[0], "zero_optimization: a boolean is deprecated"));

  warnings.clear();
  Config automatic = parse(with_batch("\"zero_optimization\": {\"stage\": 2, "
                                      "\"reduce_bucket_size\": \"auto\"}"),
                           1, &warnings);
  CHECK(automatic.zero_optimization.reduce_bucket_size == 500'000'000);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0] ==
        "ds_config.json: zero_optimization.reduce_bucket_size: \"auto\" keeps DeepSpeed's default");
  // Outside pydantic-backed sections "auto" is not a value (the HF Trainer fills those in).
  // Without a program value that fills it, the error names the key
  // (tests/dist/test_config_auto.cpp).
  CHECK(error_of("{\"train_batch_size\": \"auto\"}") ==
        "ds_config.json: train_batch_size: \"auto\" is not resolved: the program gives no value "
        "for it (give the value here, or the program's flag for it)");
}

TEST_CASE("integer fields accept DeepSpeed's 5e8 spelling but not fractions") {
  Config config = parse(with_batch(R"("zero_optimization": {"reduce_bucket_size": 5e8,
      "allgather_bucket_size": 2E5, "stage3_param_persistence_threshold": 1e4},
      "steps_per_print": 1e2)"));
  CHECK(config.zero_optimization.reduce_bucket_size == 500'000'000);
  CHECK(config.zero_optimization.allgather_bucket_size == 200'000);
  CHECK(config.zero_optimization.stage3_param_persistence_threshold == 10'000);
  CHECK(config.steps_per_print == 100);
  CHECK(error_of(with_batch("\"zero_optimization\": {\"reduce_bucket_size\": 5.5e0}")) ==
        "ds_config.json: zero_optimization.reduce_bucket_size: expected an integer >= 1, got 5.5");
  CHECK(contains(error_of(with_batch("\"zero_optimization\": {\"reduce_bucket_size\": 1e30}")),
                 "expected an integer >= 1"));
}

TEST_CASE("optimizer types are case-insensitive; Adam decouples decay unless adam_w_mode false") {
  Config lower = parse(with_batch("\"optimizer\": {\"type\": \"adamw\"}"));
  CHECK(lower.optimizer.type == "AdamW");
  CHECK(lower.optimizer.adam_w_mode);
  CHECK(parse(with_batch("\"optimizer\": {\"type\": \"sgd\"}")).optimizer.type == "SGD");

  Config l2 =
      parse(with_batch("\"optimizer\": {\"type\": \"Adam\", \"params\": {\"adam_w_mode\": false, "
                       "\"weight_decay\": 0.1, \"betas\": [0.8, 0.99], \"eps\": 1e-6}}"));
  CHECK(l2.optimizer.adam_w_mode == false);
  CHECK(l2.optimizer.weight_decay == 0.1);
  CHECK(l2.optimizer.betas[0] == 0.8);
  CHECK(l2.optimizer.betas[1] == 0.99);
  CHECK(l2.optimizer.eps == 1e-6);
  // "AdamW" decouples whatever adam_w_mode says (DeepSpeed's effective_adam_w_mode).
  Config forced = parse(
      with_batch("\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"adam_w_mode\": false}}"));
  CHECK(forced.optimizer.adam_w_mode);
  // torch_adam builds torch.optim.AdamW, whose weight_decay default is 0.01.
  Config torch_adamw =
      parse(with_batch("\"optimizer\": {\"type\": \"Adam\", \"params\": {\"torch_adam\": true}}"));
  CHECK(torch_adamw.optimizer.weight_decay == 0.01);
  Config torch_adam = parse(with_batch(
      "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"torch_adam\": true, \"adam_w_mode\": "
      "false}}"));
  CHECK(torch_adam.optimizer.weight_decay == 0.0);
}

TEST_CASE("scheduler params are read into the typed params of their type") {
  Config decay = parse(with_batch(
      R"("scheduler": {"type": "warmupdecaylr", "params": {"warmup_min_lr": 0.0001,
         "warmup_max_lr": 0.01, "warmup_num_steps": 50, "warmup_type": "linear",
         "total_num_steps": 1000, "last_batch_iteration": 7}})"));
  CHECK(decay.scheduler.type == "WarmupDecayLR");
  CHECK(decay.scheduler.warmup.warmup_min_lr == 0.0001);
  CHECK(decay.scheduler.warmup.warmup_max_lr == 0.01);
  CHECK(decay.scheduler.warmup.warmup_num_steps == 50);
  CHECK(decay.scheduler.warmup.warmup_type == optim::WarmupType::linear);
  CHECK(decay.scheduler.total_num_steps == 1000);
  CHECK(decay.scheduler.last_batch_iteration == 7);

  Config cycle = parse(with_batch(
      R"("scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.001, "cycle_max_lr": 0.1,
         "cycle_first_step_size": 100, "cycle_second_step_size": 50, "decay_step_size": 10,
         "decay_lr_rate": 0.5, "cycle_momentum": false, "cycle_first_stair_count": 0}})"));
  CHECK(cycle.scheduler.one_cycle.cycle_max_lr == 0.1);
  CHECK(cycle.scheduler.one_cycle.cycle_second_step_size == 50);
  CHECK(cycle.scheduler.one_cycle.decay_lr_rate == 0.5);
  CHECK(cycle.scheduler.one_cycle.cycle_momentum == false);
}

TEST_CASE("the repository's configs parse: the tutorial config and the four stage variants") {
  std::vector<std::string> warnings;
  Config tutorial = load_config((repository_configs() / "ds_config.json").string(), 8, &warnings);
  CHECK(warnings.empty());
  CHECK(tutorial.train_batch_size == 128);
  CHECK(tutorial.train_micro_batch_size_per_gpu == 16);
  CHECK(tutorial.gradient_accumulation_steps == 1);
  CHECK(tutorial.optimizer.type == "Adam");
  CHECK(tutorial.optimizer.lr == 0.00015);
  CHECK(tutorial.zero_optimization.stage == 2);  // the tutorial runs ZeRO stage 2
  for (int stage = 0; stage <= 3; ++stage) {
    CAPTURE(stage);
    std::string name = fmt::format("ds_config_stage{}.json", stage);
    Config variant = load_config((repository_configs() / name).string(), 4, &warnings);
    CHECK(warnings.empty());
    CHECK(variant.zero_optimization.stage == stage);
    CHECK(variant.train_micro_batch_size_per_gpu == 32);
  }
}

TEST_CASE("make_optimizer builds the configured class with the configured hyperparameters") {
  Tensor weight = zeros({3});
  Config adamw = parse(with_batch(
      "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.05, "
      "\"betas\": [0.8, 0.95], \"eps\": 1e-7, \"bias_correction\": false}}"));
  auto optimizer = make_optimizer(adamw.optimizer, optim::single_group({weight}, 0.5));
  auto* adam = dynamic_cast<optim::Adam*>(optimizer.get());
  REQUIRE(adam != nullptr);
  CHECK(adam->name() == "AdamW");
  CHECK(adam->lr() == 0.01);
  CHECK(adam->param_groups()[0].weight_decay == 0.05);
  CHECK(adam->options().beta1 == 0.8);
  CHECK(adam->options().beta2 == 0.95);
  CHECK(adam->options().eps == 1e-7);
  CHECK(adam->options().bias_correction == false);
  CHECK_THROWS_AS(sgd_options(adamw.optimizer), std::invalid_argument);

  Config torch_style = parse(
      with_batch("\"optimizer\": {\"type\": \"Adam\", \"params\": {\"adam_w_mode\": false}}"));
  auto l2_adam = make_optimizer(torch_style.optimizer, optim::single_group({weight}, 0.5));
  CHECK(l2_adam->name() == "Adam");

  Config sgd = parse(
      with_batch("\"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.1, \"momentum\": 0.9, "
                 "\"nesterov\": true, \"weight_decay\": 0.001}}"));
  auto sgd_optimizer = make_optimizer(sgd.optimizer, optim::single_group({weight}, 0.5));
  auto* plain_sgd = dynamic_cast<optim::Sgd*>(sgd_optimizer.get());
  REQUIRE(plain_sgd != nullptr);
  CHECK(plain_sgd->lr() == 0.1);
  CHECK(plain_sgd->momentum() == 0.9);
  CHECK(plain_sgd->param_groups()[0].weight_decay == 0.001);
  CHECK(sgd_options(sgd.optimizer).nesterov);
  CHECK_THROWS_AS(adam_options(sgd.optimizer), std::invalid_argument);

  Config none = parse(with_batch(""));
  CHECK_THROWS_AS(make_optimizer(none.optimizer, optim::single_group({weight}, 0.5)),
                  std::invalid_argument);
}

TEST_CASE("make_schedule builds the configured schedule; its lr_at follows DeepSpeed's formula") {
  Tensor weight = zeros({2});
  auto build = [&](const std::string& scheduler_json) {
    Config config = parse(with_batch(
        "\"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.2, \"momentum\": 0.9}}, " +
        scheduler_json));
    auto optimizer = make_optimizer(config.optimizer, optim::single_group({weight}, 0.5));
    auto schedule = make_schedule(config.scheduler, *optimizer);
    return std::make_pair(std::move(optimizer), std::move(schedule));
  };

  auto [warmup_optimizer, warmup] = build(
      R"("scheduler": {"type": "WarmupLR", "params": {"warmup_max_lr": 0.01,
         "warmup_num_steps": 100}})");
  REQUIRE(warmup != nullptr);
  CHECK(warmup->name() == "WarmupLR");
  CHECK(warmup->lr_at(9) == doctest::Approx(0.01 * std::log(10.0) / std::log(100.0)));
  CHECK(warmup_optimizer->lr() == 0.0);  // before the first step: warmup_min_lr

  auto [decay_optimizer, decay] = build(
      R"("scheduler": {"type": "WarmupDecayLR", "params": {"warmup_max_lr": 0.02,
         "warmup_num_steps": 10, "warmup_type": "linear", "total_num_steps": 110}})");
  CHECK(decay->name() == "WarmupDecayLR");
  CHECK(decay->lr_at(5) == doctest::Approx(0.01));
  CHECK(decay->lr_at(60) == doctest::Approx(0.01));  // (110 - 60) / (110 - 10) of the max

  auto [cosine_optimizer, cosine] = build(
      R"("scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 110,
         "warmup_num_steps": 10, "warmup_type": "linear", "cos_min_ratio": 0.0}})");
  CHECK(cosine->name() == "WarmupCosineLR");
  CHECK(cosine->lr_at(5) == doctest::Approx(0.2 * 0.5));   // scales the optimizer's lr 0.2
  CHECK(cosine->lr_at(59) == doctest::Approx(0.2 * 0.5));  // s = 50 of 100: cos(pi/2)

  auto [cycle_optimizer, cycle] = build(
      R"("scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.01, "cycle_max_lr": 0.11,
         "cycle_first_step_size": 10}})");
  CHECK(cycle->name() == "OneCycle");
  CHECK(cycle->lr_at(4) == doctest::Approx(0.01 + 0.1 * 0.5));  // t = 5 of the 10 rising steps
  CHECK(cycle->momentum_at(4) == doctest::Approx(0.9 - 0.1 * 0.5));

  auto [range_optimizer, range] = build(
      R"("scheduler": {"type": "LRRangeTest", "params": {"lr_range_test_min_lr": 0.001,
         "lr_range_test_step_size": 10, "lr_range_test_step_rate": 2.0,
         "lr_range_test_staircase": true}})");
  CHECK(range->name() == "LRRangeTest");
  CHECK(range->lr_at(14) == doctest::Approx(0.001 * (1 + 2.0 * 1)));  // floor(15 / 10) = 1

  auto [resumed_optimizer, resumed] = build(
      R"("scheduler": {"type": "WarmupLR", "params": {"warmup_max_lr": 0.01,
         "warmup_num_steps": 100, "last_batch_iteration": 9}})");
  CHECK(resumed->last_batch_iteration() == 9);
  CHECK(resumed_optimizer->lr() == doctest::Approx(resumed->lr_at(9)));

  auto [plain_optimizer, no_schedule] = build("\"steps_per_print\": 5");
  CHECK(no_schedule == nullptr);
}
