// ds_config.json's "auto": filled from the program's values as the Hugging Face integration fills
// it, each filled value noted for printing, and every "auto" nothing fills reported by key.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "dist/config.h"
#include "dist/config_auto.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::dist;
using namespace zt::testing;

namespace {

// The Hugging Face Trainer's ZeRO-3 example shape: "auto" wherever the Trainer fills it.
const char* kTrainerConfig = R"({
  "fp16": {"enabled": "auto", "loss_scale": 0, "initial_scale_power": 16},
  "bf16": {"enabled": "auto"},
  "optimizer": {"type": "AdamW",
                "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}},
  "scheduler": {"type": "WarmupDecayLR",
                "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto",
                           "warmup_num_steps": "auto", "total_num_steps": "auto"}},
  "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto",
                        "stage3_prefetch_bucket_size": "auto",
                        "stage3_param_persistence_threshold": "auto"},
  "gradient_accumulation_steps": "auto",
  "gradient_clipping": "auto",
  "train_batch_size": "auto",
  "train_micro_batch_size_per_gpu": "auto"
})";

ProgramValues trainer_values() {
  return {.micro_batch_size = 4,
          .gradient_accumulation_steps = 3,
          .lr = 2e-4,
          .weight_decay = 0.05,
          .betas = std::array<double, 2>{0.8, 0.95},
          .eps = 1e-6,
          .gradient_clipping = 0.5,
          .warmup_steps = 7,
          .total_steps = 90,
          .fp16 = false,
          .bf16 = true,
          .hidden_size = 64};
}

}  // namespace

TEST_CASE("every \"auto\" of a Trainer-style config is filled from the program's values") {
  std::vector<std::string> warnings;
  Config config = parse_config(kTrainerConfig, "hf.json", 2, &warnings, trainer_values());
  CHECK(config.train_micro_batch_size_per_gpu == 4);
  CHECK(config.gradient_accumulation_steps == 3);
  CHECK(config.train_batch_size == 4 * 3 * 2);
  CHECK(config.gradient_clipping == 0.5);
  CHECK(config.optimizer.lr == 2e-4);
  CHECK(config.optimizer.weight_decay == 0.05);
  CHECK(config.optimizer.betas == std::array<double, 2>{0.8, 0.95});
  CHECK(config.optimizer.eps == 1e-6);
  CHECK(config.scheduler.warmup.warmup_min_lr == 0.0);
  CHECK(config.scheduler.warmup.warmup_max_lr == 2e-4);
  CHECK(config.scheduler.warmup.warmup_num_steps == 7);
  CHECK(config.scheduler.total_num_steps == 90);
  CHECK_FALSE(config.fp16.enabled);
  CHECK(config.bf16.enabled);
  CHECK(config.zero_optimization.reduce_bucket_size == 64 * 64);
  CHECK(config.zero_optimization.stage3_prefetch_bucket_size == int64_t(0.9 * 64 * 64));
  CHECK(config.zero_optimization.stage3_param_persistence_threshold == 640);
  CHECK(warnings.empty());
  // One note per value filled, naming the key, the value and where it came from.
  CHECK(config.auto_resolved.size() == 17);
  CHECK(std::find(config.auto_resolved.begin(), config.auto_resolved.end(),
                  "hf.json: train_batch_size = 24 (\"auto\", from micro batch size * "
                  "accumulation steps * world size)") != config.auto_resolved.end());
  CHECK(std::find(config.auto_resolved.begin(), config.auto_resolved.end(),
                  "hf.json: optimizer.params.lr = 0.0002 (\"auto\", from the learning rate)") !=
        config.auto_resolved.end());
}

TEST_CASE("an \"auto\" nothing fills is an error naming its key, all of them at once") {
  ProgramValues partial{.micro_batch_size = 4, .gradient_accumulation_steps = 1};
  try {
    parse_config(kTrainerConfig, "hf.json", 1, nullptr, partial);
    FAIL("accepted");
  } catch (const ConfigError& error) {
    std::vector<std::string> keys;
    for (const std::string& line : error.errors()) {
      CHECK(contains(line, "\"auto\" is not resolved"));
      keys.push_back(line.substr(0, line.find(": \"auto\"")));
    }
    // fp16, bf16 and zero_optimization keep DeepSpeed's default instead (it drops "auto").
    CHECK(keys == std::vector<std::string>{
                      "hf.json: gradient_clipping", "hf.json: optimizer.params.lr",
                      "hf.json: optimizer.params.betas", "hf.json: optimizer.params.eps",
                      "hf.json: optimizer.params.weight_decay",
                      "hf.json: scheduler.params.warmup_max_lr",
                      "hf.json: scheduler.params.warmup_num_steps",
                      "hf.json: scheduler.params.total_num_steps"});
  }
}

TEST_CASE("\"auto\" fills only \"auto\": written values stay, the bfloat16 spelling too") {
  ProgramValues values = trainer_values();
  Config config = parse_config(R"({"train_micro_batch_size_per_gpu": 2,
      "gradient_accumulation_steps": "auto", "bfloat16": {"enabled": "auto"},
      "optimizer": {"type": "Adam", "params": {"lr": 0.01}}})",
                               "mixed.json", 1, nullptr, values);
  CHECK(config.train_micro_batch_size_per_gpu == 2);
  CHECK(config.gradient_accumulation_steps == 3);
  CHECK(config.train_batch_size == 6);
  CHECK(config.optimizer.lr == 0.01);
  CHECK(config.bf16.enabled);
  CHECK(config.auto_resolved.size() == 2);
}
