// Compression training under the engine: QAT, gradual l1 sparse pruning and row pruning on an
// MLP train to the same weights at ZeRO stages 0-3 on 2 ranks as a one-process loop with the
// same compressor and plain Adam; the hooks run after stage 3's gather, so they see whole
// parameters.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "compress/compressor.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "optim/adam.h"
#include "tests/mpi/compression_training_loops.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::dist {
namespace {

using namespace testing;

constexpr int kSteps = 12;

const char* kCompression = R"("compression_training": {
  "weight_quantization": {"shared_parameters": {"enabled": true, "schedule_offset": 2,
                                                "quantize_groups": 4},
    "different_groups": {"wq": {"params": {"start_bits": 8, "target_bits": 5,
                                           "quantization_period": 2},
                                "modules": ["^0$", "^4$"]}}},
  "sparse_pruning": {"shared_parameters": {"enabled": true, "schedule_offset": 3,
                                           "schedule_offset_end": 9, "schedule_offset_stride": 2},
    "different_groups": {"sp": {"params": {"dense_ratio": 0.2}, "modules": ["^0$"]}}},
  "row_pruning": {"shared_parameters": {"enabled": true, "schedule_offset": 5},
    "different_groups": {"rp": {"params": {"dense_ratio": 0.5}, "modules": ["^2$"],
                                "related_modules": [["^4$"]]}}}
})";

Config compression_config(int stage, int world) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "zero_optimization": {{"stage": {}, "stage3_param_persistence_threshold": 0}},
    {}
  }})",
                                 kGlobalBatch, stage, kCompression);
  return parse_config(text, "test_config", world, nullptr);
}

std::vector<double> train_with_engine(int stage) {
  comm::MpiCommunicator& world = test_world();
  comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
  Config config = compression_config(stage, world.size());
  Engine engine(config, make_mlp(), grid.data_group());
  compress::Compressor compressor(engine.module(), config.compression_training,
                                  [&] { return engine.global_steps(); });
  train_engine_on_rank_rows(engine, kSteps, world.rank(), world.size());
  return concatenated(engine.consolidated_state_dict());
}

// with_compression false: the same loop without the compressor, to show that it matters.
std::vector<double> train_single_process(bool with_compression = true) {
  std::shared_ptr<nn::Module> model = make_mlp();
  Config config = compression_config(0, 1);
  int64_t step = 0;
  std::optional<compress::Compressor> compressor;
  if (with_compression)
    compressor.emplace(*model, config.compression_training, [&] { return step; });
  train_adam_on_whole_batches(*model, step, kSteps, 0.01);
  return concatenated(model->state_dict());
}

TEST_CASE("compression under the engine: stages 0-3 train as the one-process loop") {
  const std::vector<double> reference = train_single_process();
  CHECK(relative_error(train_single_process(false), reference) > 1e-3);
  for (int stage = 0; stage <= 3; ++stage) {
    const std::vector<double> weights = train_with_engine(stage);
    CHECK_MESSAGE(relative_error(weights, reference) < 1e-5, "stage ", stage);
  }
}

}  // namespace
}  // namespace zt::dist
