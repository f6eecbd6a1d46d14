// The default generators (dropout) across a checkpoint of the pipeline GPT with dropout 0.1,
// saved at (pp, dp) = (2, world / 2): resumed at the same layout every rank draws the masks of
// the run that kept going (bitwise losses); loaded at pp 1 and pp 4 every rank continues the
// saved seed past the largest offset any saved rank reached (docs/checkpoints.md), so no mask
// of the resumed run repeats one drawn before the save, and two such loads draw alike.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "comm/process_grid.h"
#include "core/generator.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/pipeline_test_helpers.h"
#include "tests/mpi/shared_scratch.h"

namespace zt::pipeline {
namespace {

using namespace test_helpers;
using ::zt::testing::SharedScratch;
using ::zt::testing::test_world;

models::GPTConfig dropout_gpt_config() {
  models::GPTConfig config = tiny_gpt_config();
  config.dropout = 0.1;
  return config;
}

// The pipeline GPT with dropout on (stages, world / stages); weights and generators from `seed`.
struct DropoutRun {
  std::unique_ptr<comm::ProcessGrid> grid;
  std::unique_ptr<PipelineEngine> engine;

  DropoutRun(int stages, uint64_t seed) {
    comm::Communicator& world = test_world();
    const int replicas = world.size() / stages;
    grid = std::make_unique<comm::ProcessGrid>(
        world, comm::GridShape{.data = replicas, .pipeline = stages});
    manual_seed(seed);
    models::GPT whole(dropout_gpt_config());
    NamedTensors initial = whole.named_parameters();
    engine = std::make_unique<PipelineEngine>(
        pipeline_config(1, replicas, 1, 0), gpt_layer_specs(dropout_gpt_config()),
        gpt_next_token_loss, micro_batch(0, 0).inputs, *grid, &initial);
  }

  std::vector<double> train(int first, int last) {
    std::vector<double> losses;
    for (int step = first; step < last; ++step) {
      int next = grid->coordinates().data * kMicroBatches;
      losses.push_back(engine->train_batch([&] { return micro_batch(step, next++); }));
    }
    return losses;
  }
};

TEST_CASE("dropout_generators_resume_bitwise_at_the_layout_and_by_the_rule_at_another") {
  comm::Communicator& world = test_world();
  if (world.size() != 4 && world.size() != 8) return;
  SharedScratch scratch(world, "generator-checkpoint");
  const std::vector<double> straight = DropoutRun(2, 5).train(0, 4);
  uint64_t saved_seed = 0;
  double largest_offset = 0.0;
  {
    DropoutRun first(2, 5);
    first.train(0, 2);
    first.engine->engine().save_checkpoint(scratch.path());
    saved_seed = default_generator().seed();
    Tensor offset = full({1}, double(default_generator().offset()), {.dtype = DType::f64});
    world.all_reduce(offset, comm::ReduceOperation::max);
    largest_offset = offset.item();
  }
  {
    DropoutRun resumed(2, 77);
    resumed.engine->engine().load_checkpoint(scratch.path());
    CHECK(resumed.train(2, 4) == std::vector<double>(straight.begin() + 2, straight.end()));
  }
  for (int stages : {1, 4}) {
    CAPTURE(stages);
    std::vector<std::vector<double>> continued;
    for (int load = 0; load < 2; ++load) {
      DropoutRun loaded(stages, 77 + uint64_t(load));
      loaded.engine->engine().load_checkpoint(scratch.path());
      CHECK(default_generator().seed() == saved_seed);
      CHECK(double(default_generator().offset()) == largest_offset);
      continued.push_back(loaded.train(2, 3));
    }
    CHECK(continued[0] == continued[1]);
  }
}

}  // namespace
}  // namespace zt::pipeline
