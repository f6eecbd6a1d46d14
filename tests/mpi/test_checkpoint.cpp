// Multi-rank tests of engine checkpoints: a run saved halfway and resumed by a fresh engine
// (a fresh model from another seed) is bitwise the run that never stopped, at every ZeRO stage,
// in fp32 and fp16; a checkpoint saved by some ranks loads on others, at another stage; a
// damaged checkpoint gives one error naming the file, leaving the engine as it was; parameter
// groups come back as they were saved, and a checkpoint of other groups is refused.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "dist/checkpoint_files.h"
#include "dist/engine.h"
#include "dist/param_groups.h"
#include "tests/error_of.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/shared_scratch.h"

using namespace zt::comm;

namespace zt::dist {
namespace {

using namespace testing;
namespace fs = std::filesystem;

constexpr int kStepsPerEpoch = 5;

// The helpers' MLP with dropout, so that resuming must restore each rank's generator too.
std::shared_ptr<nn::Module> make_dropout_mlp(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(64, 96), std::make_shared<nn::Tanh>(),
      std::make_shared<nn::Dropout>(0.2), std::make_shared<nn::Linear>(96, 10)});
}

Config checkpoint_config(int stage, bool fp16, int world, int64_t gas = 1) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "gradient_accumulation_steps": {},
    "gradient_clipping": 1.0, "steps_per_print": 0,
    {}
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.003, "weight_decay": 0.01}}}},
    "scheduler": {{"type": "WarmupDecayLR", "params": {{"warmup_num_steps": 3,
                  "total_num_steps": 40, "warmup_max_lr": 0.003}}}},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 3000,
                          "stage3_param_persistence_threshold": 100}}
  }})",
                                 kGlobalBatch, gas,
                                 fp16 ? R"("fp16": {"enabled": true, "initial_scale_power": 12,
                                          "loss_scale_window": 3},)"
                                      : "",
                                 stage);
  return parse_config(text, "checkpoint_test", world, nullptr);
}

struct Trace {
  std::vector<double> losses, scales;
};

// Trains steps [first, last) of the global data, appending every step's loss and scale.
void train_steps(Engine& engine, Communicator& comm, int first, int last, Trace& trace) {
  int64_t gas = engine.config().gradient_accumulation_steps;
  int64_t micro = kGlobalBatch / (gas * comm.size());
  for (int step = first; step < last; ++step) {
    GlobalBatch batch = global_batch(step);
    for (int64_t m = 0; m < gas; ++m) {
      int64_t begin = (m * comm.size() + comm.rank()) * micro;
      Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, begin, micro)).to(DType::f32);
      engine.backward(cross_entropy(logits, ops::narrow(batch.targets, 0, begin, micro)));
      engine.step();
    }
    trace.losses.push_back(engine.last_global_loss());
    trace.scales.push_back(engine.loss_scale());
  }
}

}  // namespace

TEST_CASE("a run saved halfway and resumed by a fresh engine is bitwise the straight run") {
  MpiCommunicator& world = test_world();
  SharedScratch scratch(world);
  for (bool fp16 : {false, true}) {
    for (int stage : {0, 1, 2, 3}) {
      for (int64_t gas : {1, 3}) {
        if (gas == 3 && stage != 2) continue;
        CAPTURE(fp16);
        CAPTURE(stage);
        CAPTURE(gas);
        Config config = checkpoint_config(stage, fp16, world.size(), gas);
        Trace straight;
        std::vector<double> straight_weights;
        {
          Engine engine(config, make_dropout_mlp(7), world);
          train_steps(engine, world, 0, 2 * kStepsPerEpoch, straight);
          straight_weights = concatenated(engine.consolidated_state_dict());
        }
        Trace resumed;
        {
          Engine first(config, make_dropout_mlp(7), world);
          train_steps(first, world, 0, kStepsPerEpoch, resumed);
          first.save_checkpoint(scratch.path(), "", {{"epoch", 1}});
        }
        // A different model initialisation and generator state: the checkpoint must replace
        // both.
        Engine second(config, make_dropout_mlp(99), world);
        manual_seed(12345);
        nlohmann::json client = second.load_checkpoint(scratch.path());
        CHECK(client == nlohmann::json{{"epoch", 1}});
        CHECK(second.global_steps() == kStepsPerEpoch);
        train_steps(second, world, kStepsPerEpoch, 2 * kStepsPerEpoch, resumed);
        CHECK(resumed.losses == straight.losses);
        CHECK(resumed.scales == straight.scales);
        CHECK(concatenated(second.consolidated_state_dict()) == straight_weights);
        CHECK(read_latest_tag(scratch.path()) == fmt::format("global_step{}", kStepsPerEpoch));
      }
    }
  }
}

TEST_CASE("a checkpoint saved by 4 ranks loads on 2 and on 8, at another stage, and trains on") {
  MpiCommunicator& world = test_world();
  SharedScratch scratch(world);
  int savers = std::min(4, world.size());
  std::unique_ptr<Communicator> saving = world.split(world.rank() < savers ? 0 : 1, world.rank());
  std::vector<double> saved_weights;
  Trace saving_continued;
  std::vector<double> saving_after;
  if (world.rank() < savers) {
    Engine engine(checkpoint_config(2, false, savers), make_dropout_mlp(7), *saving);
    Trace trace;
    train_steps(engine, *saving, 0, 4, trace);
    engine.save_checkpoint(scratch.path(), "four");
    saved_weights = concatenated(engine.consolidated_state_dict());
    train_steps(engine, *saving, 4, 6, saving_continued);
    saving_after = concatenated(engine.consolidated_state_dict());
  }
  world.barrier();
  for (int loaders : {1, 2, 8}) {
    if (loaders > world.size()) continue;
    CAPTURE(loaders);
    std::unique_ptr<Communicator> loading =
        world.split(world.rank() < loaders ? 0 : 1, world.rank());
    if (world.rank() < loaders) {
      Engine engine(checkpoint_config(3, false, loaders), make_dropout_mlp(99), *loading);
      engine.load_checkpoint(scratch.path(), "four");
      std::vector<double> loaded = concatenated(engine.consolidated_state_dict());
      // The weights are the fp32 values saved, re-cut for this world size: bitwise.
      if (world.rank() < savers) CHECK(loaded == saved_weights);
      Trace continued;
      train_steps(engine, *loading, 4, 6, continued);
      std::vector<double> after = concatenated(engine.consolidated_state_dict());
      CHECK(after != loaded);
      // On the saving ranks themselves, stage 3 continues bitwise as stage 2 did (stages agree
      // bit for bit, and each rank's generator was restored); other rank counts sum gradients
      // in another order and draw other dropout masks, so they can only be checked to train.
      if (loaders == savers) {
        CHECK(continued.losses == saving_continued.losses);
        CHECK(after == saving_after);
      }
      for (double value : after) CHECK(std::isfinite(value));
    }
    world.barrier();
  }
}

TEST_CASE(
    "a damaged checkpoint or an unwritable folder gives one error naming it and changes nothing") {
  MpiCommunicator& world = test_world();
  SharedScratch scratch(world);
  Config config = checkpoint_config(1, false, world.size());
  Engine engine(config, make_dropout_mlp(7), world);
  Trace trace;
  train_steps(engine, world, 0, 2, trace);
  std::string tag_dir = engine.save_checkpoint(scratch.path(), "good");
  std::vector<double> before = concatenated(engine.consolidated_state_dict());
  auto damaged = [&](const std::string& name, const std::function<void(const fs::path&)>& damage) {
    fs::path copy = fs::path(scratch.path()) / name;
    if (world.rank() == 0) {
      fs::copy(tag_dir, copy, fs::copy_options::recursive);
      damage(copy);
    }
    world.barrier();
    return name;
  };
  std::string missing_rank = damaged("missing_rank", [&](const fs::path& dir) {
    fs::remove(optim_states_file(dir.string(), world.size() - 1));
  });
  CHECK(error_of([&] { engine.load_checkpoint(scratch.path(), missing_rank); }) ==
        fmt::format(
            "{}: missing (the checkpoint was saved by {} ranks)",
            optim_states_file((fs::path(scratch.path()) / missing_rank).string(), world.size() - 1),
            world.size()));
  std::string truncated = damaged("truncated", [&](const fs::path& dir) {
    fs::resize_file(model_states_file(dir.string()), 100);
  });
  std::string truncated_error =
      error_of([&] { engine.load_checkpoint(scratch.path(), truncated); });
  CHECK(truncated_error.find(model_states_file((fs::path(scratch.path()) / truncated).string())) ==
        0);
  CHECK(error_of([&] { engine.load_checkpoint(scratch.path(), "absent"); }) ==
        (fs::path(scratch.path()) / "absent").string() + ": no such checkpoint directory");
  CHECK(error_of([&] { engine.load_checkpoint(scratch.path() + "/nowhere"); }) ==
        scratch.path() + "/nowhere/latest: not found (no checkpoint has been saved in " +
            scratch.path() + "/nowhere)");
  {
    manual_seed(3);
    auto other =
        std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
            std::make_shared<nn::Linear>(64, 50), std::make_shared<nn::Tanh>(),
            std::make_shared<nn::Dropout>(0.2), std::make_shared<nn::Linear>(50, 10)});
    Engine different(config, other, world);
    CHECK(error_of([&] { different.load_checkpoint(scratch.path(), "good"); }) ==
          fmt::format("{}: parameter 0.weight is [96, 64] whole in the checkpoint; this model's "
                      "0.weight at tensor rank 0 of 1 is [50, 64] (a checkpoint of another model "
                      "shape?)",
                      model_states_file(tag_dir)));
  }
  // A folder that cannot be made: the call and the folder named, not the library's raw text.
  std::string unwritable = error_of([&] { engine.save_checkpoint("/proc/zt_checkpoints"); });
  if (world.rank() == 0) {
    CHECK(unwritable.rfind("save_checkpoint: cannot create /proc/zt_checkpoints: ", 0) == 0);
  } else {
    CHECK(unwritable == "save_checkpoint: failed on another rank");
  }
  CHECK(concatenated(engine.consolidated_state_dict()) == before);
  CHECK(engine.global_steps() == 2);
}

TEST_CASE("parameter groups: saved at stage 1, resumed at stage 3 bitwise; other groups refused") {
  MpiCommunicator& world = test_world();
  SharedScratch scratch(world);
  // The no_decay group at half the rate, so that its moments and rate must come back right.
  auto groups_of = [](nn::Module& model) {
    ParamGroupSpecs groups = weight_decay_groups(model);
    groups[1].options["lr"] = 0.0015;
    return groups;
  };
  auto engine_with_groups = [&](int stage, uint64_t seed) {
    std::shared_ptr<nn::Module> model = make_dropout_mlp(seed);
    return std::make_unique<Engine>(checkpoint_config(stage, false, world.size()), model, world,
                                    groups_of(*model));
  };
  Trace straight, resumed;
  std::unique_ptr<Engine> straight_engine = engine_with_groups(3, 7);
  train_steps(*straight_engine, world, 0, 2 * kStepsPerEpoch, straight);
  {
    std::unique_ptr<Engine> first = engine_with_groups(1, 7);
    train_steps(*first, world, 0, kStepsPerEpoch, resumed);
    first->save_checkpoint(scratch.path(), "grouped");
  }
  std::unique_ptr<Engine> second = engine_with_groups(3, 99);
  second->load_checkpoint(scratch.path(), "grouped");
  train_steps(*second, world, kStepsPerEpoch, 2 * kStepsPerEpoch, resumed);
  CHECK(resumed.losses == straight.losses);
  CHECK(concatenated(second->consolidated_state_dict()) ==
        concatenated(straight_engine->consolidated_state_dict()));
  CHECK(second->get_group_lrs() == straight_engine->get_group_lrs());

  std::string where = model_states_file(scratch.path() + "/grouped") + ": zerotrain";
  Engine ungrouped(checkpoint_config(3, false, world.size()), make_dropout_mlp(99), world);
  std::vector<double> before = concatenated(ungrouped.consolidated_state_dict());
  CHECK(error_of([&] { ungrouped.load_checkpoint(scratch.path(), "grouped"); }) ==
        where +
            ": the checkpoint's parameter groups are [\"decay\", \"no_decay\"], this "
            "engine's [\"default\"]: resume with the groups it was saved with");
  CHECK(concatenated(ungrouped.consolidated_state_dict()) == before);
  std::shared_ptr<nn::Module> model = make_dropout_mlp(99);
  ParamGroupSpecs moved = groups_of(*model);
  moved[0].params.push_back(moved[1].params.front());  // a bias into "decay"
  moved[1].params.erase(moved[1].params.begin());
  Engine regrouped(checkpoint_config(3, false, world.size()), model, world, moved);
  CHECK(error_of([&] { regrouped.load_checkpoint(scratch.path(), "grouped"); }) ==
        where + ": parameter 0.bias is in group \"decay\" here but not in the checkpoint's");
}

}  // namespace zt::dist
