// The static activation range (range_calibration "static") is a buffer of the compressed module,
// so an engine checkpoint carries it: after save and load into a fresh engine and compressor,
// the range is the saved one (rank 0's: each rank calibrates on its own micro-batches and rank 0
// writes the model file) and evaluation computes the same outputs, at ZeRO stages 0 and 3.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "comm/process_grid.h"
#include "compress/activation_range.h"
#include "compress/compressor.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/shared_scratch.h"

namespace zt::dist {
namespace {

using namespace testing;

Config static_range_config(int stage, int world) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "zero_optimization": {{"stage": {}, "stage3_param_persistence_threshold": 0}},
    "compression_training": {{"activation_quantization": {{
      "shared_parameters": {{"enabled": true, "range_calibration": "static",
                             "quantization_type": "asymmetric", "schedule_offset": 0}},
      "different_groups": {{"aq": {{"params": {{"bits": 4}}, "modules": ["^0$", "^2$"]}}}}}}}}
  }})",
                                 kGlobalBatch, stage);
  return parse_config(text, "test_config", world, nullptr);
}

std::vector<double> range_of(Engine& engine, const std::string& module) {
  for (const auto& [name, buffer] : engine.module().named_buffers())
    if (name == module + "." + compress::kActivationRangeName) return buffer.to_vector();
  FAIL("no range buffer on module ", module);
  return {};
}

// Evaluation outputs on a fixed batch (collective at stage 3).
std::vector<double> evaluate(Engine& engine) {
  engine.module().eval();
  autograd::NoGradGuard no_grad;
  std::vector<double> outputs = engine.forward(global_batch(99).inputs).to_vector();
  engine.module().train();
  return outputs;
}

void check_range_survives_checkpoint(int stage) {
  comm::MpiCommunicator& world = test_world();
  comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
  const Config config = static_range_config(stage, world.size());
  SharedScratch scratch(world, "compression-range");
  std::vector<std::vector<double>> saved_ranges;
  std::vector<double> saved_outputs;
  {
    Engine engine(config, make_mlp(), grid.data_group());
    compress::Compressor compressor(engine.module(), config.compression_training,
                                    [&] { return engine.global_steps(); });
    const int64_t micro = kGlobalBatch / world.size();
    for (int step = 0; step < 3; ++step) {
      GlobalBatch batch = global_batch(step);
      const int64_t first = world.rank() * micro;
      Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro));
      engine.backward(cross_entropy(logits, ops::narrow(batch.targets, 0, first, micro)));
      engine.step();
    }
    for (const char* module : {"0", "2"}) {
      Tensor range = from_values(range_of(engine, module), {2});
      world.broadcast(range, 0);  // the checkpoint holds rank 0's
      saved_ranges.push_back(range.to_vector());
    }
    engine.save_checkpoint(scratch.path(), "ranges");
    saved_outputs = evaluate(engine);
  }
  Engine resumed(config, make_mlp(), grid.data_group());
  compress::Compressor compressor(resumed.module(), config.compression_training,
                                  [&] { return resumed.global_steps(); });
  const std::vector<double> fresh_outputs = evaluate(resumed);  // no range yet: full precision
  resumed.load_checkpoint(scratch.path(), "ranges");
  CHECK(range_of(resumed, "0") == saved_ranges[0]);
  CHECK(range_of(resumed, "2") == saved_ranges[1]);
  CHECK(saved_ranges[1][0] < saved_ranges[1][1]);  // calibrated
  const std::vector<double> outputs = evaluate(resumed);
  if (world.rank() == 0) CHECK_MESSAGE(outputs == saved_outputs, "stage ", stage);
  // The loaded weights alone do not give those outputs: the quantization on the range does.
  resumed.module().eval();
  {
    autograd::NoGradGuard no_grad;
    NamedTensors state = resumed.consolidated_state_dict();
    auto plain = make_mlp();
    NamedTensors weights;
    for (auto& [name, tensor] : state)
      if (!name.ends_with(compress::kActivationRangeName)) weights.emplace_back(name, tensor);
    plain->load_state_dict(weights);
    plain->eval();
    if (world.rank() == 0)
      CHECK(relative_error((*plain)(global_batch(99).inputs).to_vector(), outputs) > 1e-3);
  }
  CHECK(fresh_outputs != outputs);
}

TEST_CASE("compression: the static activation range is saved in and loaded from checkpoints") {
  for (int stage : {0, 3}) check_range_survives_checkpoint(stage);
}

}  // namespace
}  // namespace zt::dist
