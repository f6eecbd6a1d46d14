// docs/modules.md's stage-3 example: the Classifier of classifier.h trained by zt::initialize at
// ZeRO stage 0 and at stage 3 with every module partitioned, from the same initial weights and
// batches, on the ranks mpirun gives. Exits 1 unless the two give bitwise equal weights.
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "comm/mpi_runtime.h"
#include "dist/initialize.h"
#include "examples/blobs.h"
#include "examples/classifier.h"

namespace {

constexpr int64_t kGlobalBatch = 64;

// The ds_config.json of one run: at stage 3 every module is partitioned (threshold 0).
std::string config_json(int stage) {
  return fmt::format(R"({{
      "train_batch_size": {},
      "steps_per_print": 0,
      "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
      "zero_optimization": {{"stage": {}, "stage3_param_persistence_threshold": 0}}
    }})",
                     kGlobalBatch, stage);
}

std::vector<double> train_at_stage(zt::comm::MpiRuntime& runtime, int stage) {
  zt::manual_seed(0);  // the same initial weights at both stages
  auto model = std::make_shared<examples::Classifier>(8, 32, 4);
  zt::dist::Config config =
      zt::dist::parse_config(config_json(stage), "stage3_module", runtime.size(), nullptr);
  zt::Initialized initialized = zt::initialize(runtime, config, model);
  zt::dist::Engine& engine = *initialized.engine;
  int64_t micro_batch = kGlobalBatch / runtime.size(), first = runtime.rank() * micro_batch;
  for (int step = 0; step < 20; ++step) {
    examples::Blobs batch = examples::make_blobs(kGlobalBatch, 8, 4, 100 + step);
    zt::nn::TensorList outputs = engine.forward(batch.points.narrow(0, first, micro_batch),
                                                batch.labels.narrow(0, first, micro_batch));
    engine.backward(outputs[1]);
    engine.step();
  }
  zt::dist::ModelStateReport report = engine.model_state_report();
  if (runtime.rank() == 0) {
    fmt::print("stage {}: rank 0 holds {} of the {} parameter bytes\n", stage, report.param_bytes,
               report.parameter_count * 4);
  }
  std::vector<double> weights;
  for (const auto& [name, tensor] : engine.consolidated_state_dict()) {
    std::vector<double> values = tensor.to_vector();
    weights.insert(weights.end(), values.begin(), values.end());
  }
  return weights;
}

}  // namespace

int main(int argc, char** argv) {
  return zt::comm::run_distributed_main(argc, argv, [](zt::comm::MpiRuntime& runtime) {
    std::vector<double> stage0 = train_at_stage(runtime, 0);
    std::vector<double> stage3 = train_at_stage(runtime, 3);
    bool equal = stage0 == stage3;
    if (runtime.rank() == 0) {
      fmt::print("{} rank(s): stage 3's weights {} stage 0's bit for bit\n", runtime.size(),
                 equal ? "equal" : "DIFFER FROM");
    }
    return equal ? 0 : 1;
  });
}
