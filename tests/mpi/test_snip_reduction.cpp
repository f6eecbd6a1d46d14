// snip_momentum on several data-parallel ranks: each rank collects the gradient of its own
// micro-batch, and Compressor::set_snip_gradient_reduction averages it over the ranks before it
// enters the scores, so every rank scores the whole batch's gradient (as the pruner reads the
// reduced p.grad). The masks and trained weights on N ranks equal a one-process run on the whole
// batch; without the reduction the ranks score different gradients and the run differs.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "compress/compressor.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "optim/adam.h"
#include "tests/mpi/compression_training_loops.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::dist {
namespace {

using namespace testing;

constexpr int kSteps = 10;

Config snip_config(int world) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "compression_training": {{"sparse_pruning": {{
      "shared_parameters": {{"enabled": true, "method": "snip_momentum", "block_pattern": "4x1",
                             "dense_ratio": 0.3, "schedule_offset": 2,
                             "schedule_offset_end": 8, "schedule_offset_stride": 2}},
      "different_groups": {{"sp": {{"params": {{"dense_ratio": 0.3}}, "modules": ["^0$", "^2$"]}}}}}}}}
  }})",
                                 kGlobalBatch);
  return parse_config(text, "test_config", world, nullptr);
}

struct SnipRun {
  std::vector<double> weights;
  std::vector<float> masks;  // both modules' final masks, end to end
};

std::vector<float> masks_of(compress::Compressor& compressor, int64_t step,
                            const NamedTensors& state) {
  std::vector<float> masks;
  for (const compress::ModuleCompression& module : compressor.state_at(step, state))
    masks.insert(masks.end(), module.sparse_mask.begin(), module.sparse_mask.end());
  return masks;
}

SnipRun train_on_ranks(bool reduce) {
  comm::MpiCommunicator& world = test_world();
  comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
  Config config = snip_config(world.size());
  Engine engine(config, make_mlp(), grid.data_group());
  compress::Compressor compressor(engine.module(), config.compression_training,
                                  [&] { return engine.global_steps(); });
  if (reduce) {
    compressor.set_snip_gradient_reduction([&](std::vector<float>& values) {
      Tensor buffer = empty({int64_t(values.size())});
      std::memcpy(buffer.data_ptr<float>(), values.data(), values.size() * sizeof(float));
      engine.data_parallel_communicator().all_reduce(buffer);
      for (size_t i = 0; i < values.size(); ++i)
        values[i] = buffer.data_ptr<float>()[i] / float(world.size());
    });
  }
  train_engine_on_rank_rows(engine, kSteps, world.rank(), world.size());
  const int64_t micro = kGlobalBatch / world.size();
  // One more forward folds the last step's gradient in, as the next step would.
  engine.forward(ops::narrow(global_batch(kSteps).inputs, 0, 0, micro));
  NamedTensors state = engine.consolidated_state_dict();
  return {concatenated(state), masks_of(compressor, kSteps, state)};
}

SnipRun train_single_process() {
  std::shared_ptr<nn::Module> model = make_mlp();
  Config config = snip_config(1);
  int64_t step = 0;
  compress::Compressor compressor(*model, config.compression_training, [&] { return step; });
  train_adam_on_whole_batches(*model, step, kSteps, 0.01);
  (*model)(global_batch(kSteps).inputs);
  NamedTensors state = model->state_dict();
  return {concatenated(state), masks_of(compressor, kSteps, state)};
}

TEST_CASE("snip_momentum on several ranks: the reduced gradient scores as one process") {
  const SnipRun reference = train_single_process();
  const SnipRun reduced = train_on_ranks(true);
  const SnipRun unreduced = train_on_ranks(false);
  REQUIRE(!reference.masks.empty());
  size_t kept = 0;
  for (float m : reference.masks) kept += m != 0.0f ? 1 : 0;
  CHECK(kept < reference.masks.size());  // something was pruned
  CHECK(reduced.masks == reference.masks);
  CHECK(relative_error(reduced.weights, reference.weights) < 1e-5);
  if (test_world().size() > 1) {
    CHECK(relative_error(unreduced.weights, reference.weights) > 1e-4);
  }
}

}  // namespace
}  // namespace zt::dist
