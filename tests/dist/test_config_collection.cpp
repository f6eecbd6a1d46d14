// tests/configs/: real-world-shaped ds_config.json files (Hugging Face Trainer and Accelerate
// with "auto", Megatron and DeepSpeed-Chat without an optimizer block, the DeepSpeed tutorial's,
// ZeRO-3's other spellings) replayed: each loads on 1 and 2 ranks with a program's values and
// optimizer, with no "unknown key"; each of rejected/ fails with the error its first line names.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dist/config.h"
#include "dist/config_builders.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::dist;
using namespace zt::testing;

namespace {

std::filesystem::path collection() {
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "configs";
}

std::vector<std::filesystem::path> json_files(const std::filesystem::path& folder) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// A program's values, as mnist_train's and gpt_train's flags give them.
ProgramValues program_values() {
  return {.micro_batch_size = 16,
          .gradient_accumulation_steps = 2,
          .lr = 1e-3,
          .weight_decay = 0.01,
          .betas = std::array<double, 2>{0.9, 0.999},
          .eps = 1e-8,
          .gradient_clipping = 1.0,
          .warmup_steps = 10,
          .total_steps = 100,
          .fp16 = false,
          .bf16 = false,
          .hidden_size = 64};
}

}  // namespace

TEST_CASE("every config of tests/configs loads on 1 and 2 ranks, without an unknown key") {
  std::vector<std::filesystem::path> files = json_files(collection());
  REQUIRE(files.size() >= 7);
  for (const std::filesystem::path& file : files) {
    for (int world : {1, 2}) {
      CAPTURE(file.filename().string());
      CAPTURE(world);
      std::vector<std::string> warnings;
      Config config;
      try {
        config = load_config(file.string(), world, &warnings, program_values());
      } catch (const ConfigError& error) {
        FAIL(error.what());
        continue;
      }
      config = with_client_optimizer(config, {.optimizer = client_optimizer("adamw", 1e-3, 0.01)},
                                     nullptr);
      CHECK(config.optimizer.present);
      CHECK(config.train_batch_size ==
            config.train_micro_batch_size_per_gpu * config.gradient_accumulation_steps * world);
      for (const std::string& warning : warnings) CHECK_FALSE(contains(warning, "unknown key"));
    }
  }
}

TEST_CASE("what the collection's configs say is what the Config holds") {
  auto load = [](const std::string& name, int world = 1) {
    return load_config((collection() / name).string(), world, nullptr, program_values());
  };
  Config trainer = load("hf_trainer_zero3_auto.json", 2);
  CHECK(trainer.train_batch_size == 16 * 2 * 2);
  CHECK(trainer.optimizer.type == "AdamW");
  CHECK(trainer.optimizer.lr == 1e-3);
  CHECK(trainer.scheduler.total_num_steps == 100);
  CHECK(trainer.zero_optimization.stage3_prefetch_bucket_size == int64_t(0.9 * 64 * 64));
  CHECK(trainer.zero_optimization.gather_16bit_weights_on_model_save);
  CHECK(trainer.zero_optimization.offload_param.enabled());
  Config accelerate = load("accelerate_no_optimizer_auto.json");
  CHECK_FALSE(accelerate.optimizer.present);
  CHECK(accelerate.gradient_clipping == 1.0);
  Config megatron = load("megatron_no_optimizer.json");
  CHECK_FALSE(megatron.optimizer.present);
  CHECK(megatron.gradient_accumulation_steps == 2);
  CHECK(megatron.activation_checkpointing.contiguous_memory_optimization);
  Config spellings = load("zero3_short_spellings.json");
  CHECK(spellings.zero_optimization.stage3_param_persistence_threshold == 200);
  CHECK(spellings.zero_optimization.stage3_model_persistence_threshold == 1000);
  CHECK(spellings.zero_optimization.stage3_prefetch_bucket_size == 20000);
  CHECK(spellings.zero_optimization.sub_group_size == 100000);
}

TEST_CASE("every config of tests/configs/rejected fails with the error its first line names") {
  std::vector<std::filesystem::path> files = json_files(collection() / "rejected");
  REQUIRE(files.size() >= 3);
  for (const std::filesystem::path& file : files) {
    CAPTURE(file.filename().string());
    std::ifstream in(file);
    std::string first_line;
    std::getline(in, first_line);
    const std::string marker = "// error: ";
    REQUIRE(first_line.rfind(marker, 0) == 0);
    std::string expected = first_line.substr(marker.size());
    try {
      load_config(file.string(), 1, nullptr, program_values());
      FAIL("accepted");
    } catch (const ConfigError& error) {
      CHECK(contains(error.what(), expected));
    }
  }
}
