// The program's own optimizer and schedule (deepspeed.initialize's optimizer and lr_scheduler):
// DeepSpeed's rule between them and the config's blocks, and the optimizers named by flags.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "dist/config.h"
#include "dist/config_builders.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::dist;
using namespace zt::testing;

TEST_CASE("a config without an optimizer block trains with the program's optimizer") {
  Config config = parse(with_batch(""));
  CHECK_FALSE(config.optimizer.present);
  std::vector<std::string> notes;
  Config merged =
      with_client_optimizer(config, {.optimizer = client_optimizer("adamw", 3e-4, 0.02)}, &notes);
  CHECK(merged.optimizer.present);
  CHECK(merged.optimizer.type == "AdamW");
  CHECK(merged.optimizer.lr == 3e-4);
  CHECK(merged.optimizer.weight_decay == 0.02);
  CHECK(merged.optimizer.adam_w_mode);
  CHECK(notes.empty());
  // Neither the config nor the program: an error naming the file.
  try {
    with_client_optimizer(config, {}, nullptr);
    FAIL("accepted");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()) ==
          "ds_config.json: optimizer: the config has no optimizer block and the program passes "
          "no optimizer (give one of them)");
  }
}

TEST_CASE("with both, the program's optimizer and schedule win, as in DeepSpeed") {
  Config config = parse(with_batch(R"("optimizer": {"type": "SGD", "params": {"lr": 0.5}},
      "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 10}})"));
  SchedulerConfig schedule = parse(with_batch(R"("scheduler": {"type": "WarmupDecayLR",
      "params": {"total_num_steps": 40, "warmup_num_steps": 4}})"))
                                 .scheduler;
  std::vector<std::string> notes;
  Config merged = with_client_optimizer(
      config, {.optimizer = client_optimizer("adam", 0.01, 0.1), .lr_scheduler = schedule}, &notes);
  CHECK(merged.optimizer.type == "Adam");
  CHECK_FALSE(merged.optimizer.adam_w_mode);  // torch.optim.Adam: decay added to the gradient
  CHECK(merged.optimizer.lr == 0.01);
  CHECK(merged.scheduler.type == "WarmupDecayLR");
  CHECK(merged.scheduler.total_num_steps == 40);
  REQUIRE(notes.size() == 2);
  CHECK(contains(notes[0], "optimizer: the block is ignored; the program passes its own Adam"));
  CHECK(contains(notes[1],
                 "scheduler: the block is ignored; the program passes its own "
                 "WarmupDecayLR"));
  // Only a schedule from the program: the config's optimizer stays.
  Config schedule_only = with_client_optimizer(config, {.lr_scheduler = schedule}, nullptr);
  CHECK(schedule_only.optimizer.type == "SGD");
  CHECK(schedule_only.optimizer.lr == 0.5);
}

TEST_CASE("the program's optimizer by its torch.optim name") {
  CHECK(client_optimizer("sgd", 0.1, 0.0).type == "SGD");
  CHECK(client_optimizer("adam", 0.1, 0.0).type == "Adam");
  CHECK_THROWS_WITH_AS(client_optimizer("lamb", 0.1, 0.0),
                       "optimizer: expected one of adam, adamw, sgd, got 'lamb'",
                       std::invalid_argument);
  // The optimizer built from it updates as the config's equivalent block does.
  Config block = parse(with_batch(R"("optimizer": {"type": "Adam",
      "params": {"lr": 0.01, "weight_decay": 0.1, "adam_w_mode": false}})"));
  OptimizerConfig program = client_optimizer("adam", 0.01, 0.1);
  CHECK(adam_options(program).decoupled_weight_decay ==
        adam_options(block.optimizer).decoupled_weight_decay);
  CHECK(program.betas == block.optimizer.betas);
  CHECK(program.eps == block.optimizer.eps);
}
