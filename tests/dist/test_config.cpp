// ds_config.json parsing against DeepSpeed's defaults, batch-size table and error rules (fact
// sheet, reference/deepspeed.md section 1). Precision, features, warnings, the repository's
// configs and what is built from a config: tests/dist/test_config_features.cpp.
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

TEST_CASE("every default is DeepSpeed's code default (steps_per_print: the documented 10)") {
  std::vector<std::string> warnings;
  Config config = parse("{\"train_batch_size\": 8}", 1, &warnings);
  CHECK(warnings.empty());
  CHECK(config.source_name == "ds_config.json");
  CHECK(config.world_size == 1);
  CHECK(config.train_batch_size == 8);
  CHECK(config.train_micro_batch_size_per_gpu == 8);
  CHECK(config.gradient_accumulation_steps == 1);
  CHECK(config.steps_per_print == 10);
  CHECK(config.wall_clock_breakdown == false);
  CHECK(config.gradient_clipping == 0.0);
  CHECK(config.prescale_gradients == false);
  CHECK(config.gradient_predivide_factor == 1.0);
  CHECK(config.zero_allow_untested_optimizer == false);
  CHECK_FALSE(config.optimizer.present);
  CHECK_FALSE(config.scheduler.present);

  const ZeroConfig& zero = config.zero_optimization;
  CHECK(zero.stage == 0);
  CHECK(zero.contiguous_gradients);
  CHECK(zero.reduce_scatter);
  CHECK(zero.allgather_partitions);
  CHECK(zero.overlap_comm == false);
  CHECK(zero.reduce_bucket_size == 500'000'000);
  CHECK(zero.allgather_bucket_size == 500'000'000);
  CHECK(zero.stage3_prefetch_bucket_size == 50'000'000);
  CHECK(zero.stage3_param_persistence_threshold == 100'000);
  CHECK(zero.stage3_max_live_parameters == 1'000'000'000);
  CHECK(zero.stage3_max_reuse_distance == 1'000'000'000);
  CHECK(zero.stage3_gather_timeout == 1800.0);  // not DeepSpeed's: its process-group timeout
  CHECK(zero.offload_optimizer.device == "none");
  CHECK(zero.offload_param.device == "none");

  CHECK(config.fp16.enabled == false);
  CHECK(config.fp16.auto_cast == false);
  CHECK(config.fp16.loss_scale == 0.0);
  CHECK(config.fp16.initial_scale_power == 16);
  CHECK(config.fp16.loss_scale_window == 1000);
  CHECK(config.fp16.hysteresis == 2);
  CHECK(config.fp16.consecutive_hysteresis == false);
  CHECK(config.fp16.min_loss_scale == 1.0);
  CHECK(config.bf16.enabled == false);
}

TEST_CASE("optimizer and scheduler params default to DeepSpeed's constructor defaults") {
  Config adam = parse(with_batch("\"optimizer\": {\"type\": \"Adam\"}"));
  CHECK(adam.optimizer.present);
  CHECK(adam.optimizer.type == "Adam");
  CHECK(adam.optimizer.lr == 1e-3);
  CHECK(adam.optimizer.betas[0] == 0.9);
  CHECK(adam.optimizer.betas[1] == 0.999);
  CHECK(adam.optimizer.eps == 1e-8);
  CHECK(adam.optimizer.weight_decay == 0.0);
  CHECK(adam.optimizer.bias_correction);
  CHECK(adam.optimizer.adam_w_mode);  // DeepSpeed's "Adam" is AdamW by default
  CHECK(adam.optimizer.torch_adam == false);

  Config sgd = parse(with_batch("\"optimizer\": {\"type\": \"SGD\", \"params\": {}}"));
  CHECK(sgd.optimizer.type == "SGD");
  CHECK(sgd.optimizer.lr == 1e-3);
  CHECK(sgd.optimizer.momentum == 0.0);
  CHECK(sgd.optimizer.dampening == 0.0);
  CHECK(sgd.optimizer.nesterov == false);

  Config warmup = parse(with_batch("\"scheduler\": {\"type\": \"WarmupLR\"}"));
  CHECK(warmup.scheduler.present);
  CHECK(warmup.scheduler.type == "WarmupLR");
  CHECK(warmup.scheduler.warmup.warmup_min_lr == 0.0);
  CHECK(warmup.scheduler.warmup.warmup_max_lr == 0.001);
  CHECK(warmup.scheduler.warmup.warmup_num_steps == 1000);
  CHECK(warmup.scheduler.warmup.warmup_type == optim::WarmupType::log);
  CHECK(warmup.scheduler.last_batch_iteration == -1);

  Config cycle = parse(
      with_batch("\"scheduler\": {\"type\": \"OneCycle\", \"params\": {\"cycle_min_lr\": 0.001, "
                 "\"cycle_max_lr\": 0.01}}"));
  const optim::OneCycleParams& one_cycle = cycle.scheduler.one_cycle;
  CHECK(one_cycle.cycle_first_step_size == 2000);
  CHECK(one_cycle.cycle_second_step_size == -1);  // same as the first
  CHECK(one_cycle.decay_step_size == 0);
  CHECK(one_cycle.decay_lr_rate == 0.0);
  CHECK(one_cycle.cycle_momentum);
  CHECK(one_cycle.cycle_min_mom == 0.8);
  CHECK(one_cycle.cycle_max_mom == 0.9);
  CHECK(one_cycle.decay_mom_rate == 0.0);

  Config range = parse(with_batch("\"scheduler\": {\"type\": \"LRRangeTest\"}"));
  CHECK(range.scheduler.lr_range_test.lr_range_test_min_lr == 1e-3);
  CHECK(range.scheduler.lr_range_test.lr_range_test_step_size == 2000);
  CHECK(range.scheduler.lr_range_test.lr_range_test_step_rate == 1.0);
  CHECK(range.scheduler.lr_range_test.lr_range_test_staircase == false);

  Config cosine = parse(
      with_batch("\"scheduler\": {\"type\": \"WarmupCosineLR\", \"params\": {\"total_num_steps\": "
                 "5000}}"));
  CHECK(cosine.scheduler.warmup_cosine.total_num_steps == 5000);
  CHECK(cosine.scheduler.warmup_cosine.warmup_min_ratio == 0.0);
  CHECK(cosine.scheduler.warmup_cosine.warmup_num_steps == 1000);
  CHECK(cosine.scheduler.warmup_cosine.cos_min_ratio == 1e-4);
  CHECK(cosine.scheduler.warmup_cosine.warmup_type == optim::WarmupType::log);
}

TEST_CASE("stage3_gather_timeout is read in seconds, fractions allowed") {
  Config config = parse(with_batch("\"zero_optimization\": {\"stage3_gather_timeout\": 2.5}"));
  CHECK(config.zero_optimization.stage3_gather_timeout == 2.5);
}

TEST_CASE("overlap_comm left unset is true at stage 3 only, as in DeepSpeed's code") {
  for (int stage = 0; stage <= 3; ++stage) {
    Config config =
        parse(with_batch(fmt::format("\"zero_optimization\": {{\"stage\": {}}}", stage)));
    CHECK(config.zero_optimization.stage == stage);
    CHECK(config.zero_optimization.overlap_comm == (stage == 3));
  }
  Config explicit_off =
      parse(with_batch("\"zero_optimization\": {\"stage\": 3, \"overlap_comm\": false}"));
  CHECK(explicit_off.zero_optimization.overlap_comm == false);
}

TEST_CASE("batch triple: every row of DeepSpeed's table at world sizes 1, 2, 4 and 8") {
  for (int world : {1, 2, 4, 8}) {
    CAPTURE(world);
    // all three given: checked only
    Config all = parse(fmt::format("{{\"train_batch_size\": {}, \"train_micro_batch_size_per_gpu\""
                                   ": 4, \"gradient_accumulation_steps\": 2}}",
                                   8 * world),
                       world);
    CHECK(all.train_batch_size == 8 * world);
    // TBS + MBS: GAS = TBS // MBS // world
    Config tbs_mbs =
        parse(fmt::format("{{\"train_batch_size\": {}, \"train_micro_batch_size_per_gpu\": 2}}",
                          6 * world),
              world);
    CHECK(tbs_mbs.gradient_accumulation_steps == 3);
    CHECK(tbs_mbs.train_micro_batch_size_per_gpu == 2);
    // TBS + GAS: MBS = TBS // world // GAS
    Config tbs_gas = parse(
        fmt::format("{{\"train_batch_size\": {}, \"gradient_accumulation_steps\": 2}}", 8 * world),
        world);
    CHECK(tbs_gas.train_micro_batch_size_per_gpu == 4);
    CHECK(tbs_gas.gradient_accumulation_steps == 2);
    // MBS + GAS: TBS = MBS * GAS * world
    Config mbs_gas =
        parse("{\"train_micro_batch_size_per_gpu\": 3, \"gradient_accumulation_steps\": 5}", world);
    CHECK(mbs_gas.train_batch_size == 15 * world);
    // TBS only: GAS = 1, MBS = TBS // world
    Config tbs = parse(fmt::format("{{\"train_batch_size\": {}}}", 16 * world), world);
    CHECK(tbs.gradient_accumulation_steps == 1);
    CHECK(tbs.train_micro_batch_size_per_gpu == 16);
    // MBS only: GAS = 1, TBS = MBS * world
    Config mbs = parse("{\"train_micro_batch_size_per_gpu\": 7}", world);
    CHECK(mbs.gradient_accumulation_steps == 1);
    CHECK(mbs.train_batch_size == 7 * world);
    // GAS only, or nothing: an error
    CHECK(contains(error_of("{\"gradient_accumulation_steps\": 2}", world),
                   "either train_batch_size or train_micro_batch_size_per_gpu needs to be "
                   "provided"));
    CHECK(contains(error_of("{}", world), "needs to be provided"));
  }
}

TEST_CASE("inconsistent batch sizes name the three numbers and the world size") {
  CHECK(error_of("{\"train_batch_size\": 16, \"train_micro_batch_size_per_gpu\": 2, "
                 "\"gradient_accumulation_steps\": 1}",
                 4) ==
        "ds_config.json: train_batch_size 16 != train_micro_batch_size_per_gpu 2 * "
        "gradient_accumulation_steps 1 * world size 4");
  // Floor division: 10 // 3 // 1 = 3, and 3 * 3 * 1 != 10.
  CHECK(error_of("{\"train_batch_size\": 10, \"train_micro_batch_size_per_gpu\": 3}") ==
        "ds_config.json: train_batch_size 10 != train_micro_batch_size_per_gpu 3 * "
        "gradient_accumulation_steps 3 * world size 1 (gradient_accumulation_steps derived as 10 "
        "// 3 // 1)");
  // A derived member of 0 fails too: 4 // 2 // 4 = 0.
  CHECK(contains(error_of("{\"train_batch_size\": 4, \"train_micro_batch_size_per_gpu\": 2}", 4),
                 "gradient_accumulation_steps 0 * world size 4"));
  CHECK(contains(error_of("{\"train_batch_size\": 6}", 4), "train_micro_batch_size_per_gpu 1"));
  CHECK(error_of("{\"train_batch_size\": 0}") ==
        "ds_config.json: train_batch_size: expected an integer >= 1, got 0");
  CHECK(error_of("{\"train_batch_size\": 8}", 0) == "ds_config.json: world size 0 must be >= 1");
}

TEST_CASE("comments: // and /* */ outside strings, comment markers inside strings are data") {
  const std::string text = R"({
    // a line comment
    "train_batch_size": 32, /* a block
       comment over lines */ "optimizer": {
      "type": "Adam", // trailing
      "params": {"lr": /* inline */ 0.5}
    },
    "wandb": {"enabled": false, "project": "http://example.com//x /* not a comment */"},
    "tensorboard": {"enabled": false, "job_name": "say \"//\" here"}
  } // last line without a newline)";
  Config config = parse(text);
  CHECK(config.train_batch_size == 32);
  CHECK(config.optimizer.lr == 0.5);
  nlohmann::json parsed = parse_json_with_comments(text, "x.json");
  CHECK(parsed["wandb"]["project"] == "http://example.com//x /* not a comment */");
  CHECK(parsed["tensorboard"]["job_name"] == "say \"//\" here");
}

TEST_CASE("an unterminated block comment is reported where it opens") {
  CHECK(error_of("{\n  \"train_batch_size\": 8, /* never closed\n\n}") ==
        "ds_config.json: unterminated /* comment opened at line 2, column 26");
  // A "/*" inside a string does not open a comment.
  CHECK(contains(error_of("{\"a\": \"/*\", \"train_batch_size\": 8 /* open"),
                 "opened at line 1, column 35"));
}

TEST_CASE("invalid JSON is reported with its line and column") {
  std::string message = error_of("{\n  \"train_batch_size\": 8,\n}");
  CHECK(contains(message, "ds_config.json: invalid JSON at line 3, column 1: syntax error"));
  CHECK(contains(error_of("[1, 2]"), "expected a JSON object at the top level, got array"));
  CHECK(contains(error_of(""), "ds_config.json: invalid JSON at line 1, column 1"));
}

TEST_CASE("a duplicate key is an error naming its path, as DeepSpeed rejects them") {
  CHECK(error_of("{\"train_batch_size\": 8, \"train_batch_size\": 16}") ==
        "ds_config.json: train_batch_size: duplicate key");
  CHECK(error_of(with_batch(
            "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 1, \"lr\": 2}}")) ==
        "ds_config.json: optimizer.params.lr: duplicate key");
  // The same key in sibling objects, or in objects inside an array, is not a duplicate.
  CHECK(error_of(with_batch("\"fp16\": {\"enabled\": false}, \"bf16\": {\"enabled\": false}")) ==
        "(no error)");
  CHECK_THROWS_WITH_AS(parse_json_with_comments("{\"a\": [{\"b\": 1}, {\"b\": 2, \"b\": 3}]}", "x"),
                       "x: a[1].b: duplicate key", JsonTextError);
}

TEST_CASE("a missing file names the path and the system's reason") {
  CHECK_THROWS_WITH_AS(load_config("no/such/ds_config.json", 1, nullptr),
                       "no/such/ds_config.json: cannot open (No such file or directory)",
                       ConfigError);
}

TEST_CASE("wrong types and values name the key's path and what was expected") {
  CHECK(error_of(with_batch("\"zero_optimization\": {\"stage\": 4}")) ==
        "ds_config.json: zero_optimization.stage: expected 0..3, got 4");
  CHECK(error_of("{\"train_batch_size\": \"16\"}") ==
        "ds_config.json: train_batch_size: expected an integer >= 1, got \"16\"");
  CHECK(error_of("{\"train_batch_size\": 2.5}") ==
        "ds_config.json: train_batch_size: expected an integer >= 1, got 2.5");
  CHECK(error_of(with_batch("\"wall_clock_breakdown\": \"yes\"")) ==
        "ds_config.json: wall_clock_breakdown: expected true or false, got \"yes\"");
  CHECK(error_of(with_batch("\"gradient_clipping\": -1.0")) ==
        "ds_config.json: gradient_clipping: expected a number >= 0, got -1.0");
  CHECK(error_of(with_batch("\"gradient_predivide_factor\": 0")) ==
        "ds_config.json: gradient_predivide_factor: expected a number > 0, got 0");
  CHECK(error_of(with_batch("\"steps_per_print\": -5")) ==
        "ds_config.json: steps_per_print: expected an integer >= 0, got -5");
  CHECK(error_of(with_batch("\"optimizer\": \"Adam\"")) ==
        "ds_config.json: optimizer: expected an object {...}, got \"Adam\"");
  CHECK(error_of(with_batch("\"optimizer\": {\"type\": \"Adamm\"}")) ==
        "ds_config.json: optimizer.type: unknown optimizer \"Adamm\" (expected Adam, AdamW, SGD, "
        "Lamb, OneBitAdam, ZeroOneAdam, OneBitLamb)");
  CHECK(error_of(with_batch("\"optimizer\": {\"params\": {\"lr\": 0.1}}")) ==
        "ds_config.json: optimizer.type: required (Adam, AdamW, SGD, Lamb, OneBitAdam, "
        "ZeroOneAdam or OneBitLamb)");
  CHECK(error_of(with_batch("\"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": -0.1}}")) ==
        "ds_config.json: optimizer.params.lr: expected a number >= 0, got -0.1");
  CHECK(error_of(with_batch(
            "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"betas\": [0.9, 1.0]}}")) ==
        "ds_config.json: optimizer.params.betas: expected [beta1, beta2] with each in [0, 1), got "
        "[0.9,1.0]");
  CHECK(error_of(with_batch("\"optimizer\": {\"type\": \"SGD\", \"params\": {\"nesterov\": "
                            "true}}")) ==
        "ds_config.json: optimizer.params.nesterov: needs momentum > 0 and dampening 0, got "
        "momentum 0 and dampening 0");
  CHECK(error_of(with_batch("\"zero_optimization\": {\"allgather_bucket_size\": 3}")) ==
        "ds_config.json: zero_optimization.allgather_bucket_size: expected an even integer, got 3");
  CHECK(error_of(with_batch("\"zero_optimization\": {\"reduce_bucket_size\": 0}")) ==
        "ds_config.json: zero_optimization.reduce_bucket_size: expected an integer >= 1, got 0");
  CHECK(error_of(with_batch("\"zero_optimization\": {\"stage3_gather_timeout\": 0}")) ==
        "ds_config.json: zero_optimization.stage3_gather_timeout: expected a number > 0, got 0");
  CHECK(error_of(with_batch("\"zero_optimization\": [0]")) ==
        "ds_config.json: zero_optimization: expected an object {...}, got [0]");
  CHECK(error_of(with_batch("\"fp16\": {\"enabled\": false, \"hysteresis\": 0}")) ==
        "ds_config.json: fp16.hysteresis: expected an integer >= 1, got 0");
  CHECK(
      error_of(with_batch(
          "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_type\": \"cosine\"}}")) ==
      "ds_config.json: scheduler.params.warmup_type: expected one of \"log\", \"linear\", got "
      "\"cosine\"");
}

TEST_CASE("max_grad_norm in optimizer params points to gradient_clipping, as DeepSpeed does") {
  CHECK(error_of(with_batch("\"optimizer\": {\"type\": \"Adam\", \"params\": {\"max_grad_norm\": "
                            "1.0}}")) ==
        "ds_config.json: optimizer.params.max_grad_norm: not an optimizer parameter; use the "
        "top-level \"gradient_clipping\" instead");
}

TEST_CASE("unknown optimizer or scheduler params are errors, as the constructors reject them") {
  CHECK(error_of(with_batch(
            "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"learning_rate\": 0.1}}")) ==
        "ds_config.json: optimizer.params.learning_rate: unknown parameter for Adam (DeepSpeed "
        "passes params to the optimizer's constructor, which rejects it)");
  CHECK(contains(error_of(with_batch(
                     "\"optimizer\": {\"type\": \"SGD\", \"params\": {\"betas\": [0.9, 0.99]}}")),
                 "optimizer.params.betas: unknown parameter for SGD"));
  CHECK(contains(error_of(with_batch("\"scheduler\": {\"type\": \"WarmupLR\", \"params\": "
                                     "{\"warmup_max_lrr\": 0.1}}")),
                 "rejects it) (did you mean \"warmup_max_lr\"?)"));
  CHECK(contains(error_of(with_batch("\"scheduler\": {\"type\": \"WarmupLR\", \"params\": "
                                     "{\"total_num_steps\": 10}}")),
                 "scheduler.params.total_num_steps: unknown parameter for WarmupLR"));
}

TEST_CASE("optimizers and schedulers DeepSpeed or torch has but this engine lacks: not yet") {
  for (const char* name : {"Adagrad", "Lion", "lion", "RMSprop"}) {
    CAPTURE(name);
    std::string message =
        error_of(with_batch(fmt::format("\"optimizer\": {{\"type\": \"{}\"}}", name)));
    CHECK(contains(message, "ds_config.json: optimizer.type: optimizer"));
    CHECK(contains(message, "is not implemented yet (implemented: Adam, AdamW, SGD, Lamb"));
  }
  CHECK(error_of(with_batch("\"scheduler\": {\"type\": \"StepLR\"}")) ==
        "ds_config.json: scheduler.type: torch scheduler \"StepLR\" is not implemented yet "
        "(implemented: WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest)");
  CHECK(error_of(with_batch("\"scheduler\": {\"type\": \"Warmup\"}")) ==
        "ds_config.json: scheduler.type: unknown scheduler \"Warmup\" (expected WarmupLR, "
        "WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest)");
}

TEST_CASE("required scheduler params are errors when missing") {
  CHECK(error_of(with_batch("\"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": "
                            "{\"warmup_num_steps\": 10}}")) ==
        "ds_config.json: scheduler.params.total_num_steps: required for WarmupDecayLR");
  CHECK(error_of(with_batch("\"scheduler\": {\"type\": \"WarmupCosineLR\"}")) ==
        "ds_config.json: scheduler.params.total_num_steps: required for WarmupCosineLR");
  CHECK(error_of(with_batch("\"scheduler\": {\"type\": \"OneCycle\", \"params\": "
                            "{\"cycle_max_lr\": 0.1}}")) ==
        "ds_config.json: scheduler.params.cycle_min_lr: required for OneCycle");
  CHECK(error_of(with_batch("\"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": "
                            "{\"warmup_num_steps\": 100, \"total_num_steps\": 50}}")) ==
        "ds_config.json: scheduler.params.total_num_steps: expected an integer >= "
        "warmup_num_steps 100, got 50");
  CHECK(error_of(with_batch("\"scheduler\": {\"params\": {}}")) ==
        "ds_config.json: scheduler.type: required (WarmupLR, WarmupDecayLR, WarmupCosineLR, "
        "OneCycle, LRRangeTest)");
}
