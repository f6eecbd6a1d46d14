// docs/offload.md's partitioned construction: the Classifier of classifier.h built inside
// zt::dist::PartitionedInit (each rank keeps only its slices) and built whole, both trained by
// zt::initialize at ZeRO stage 3 from the same seed and batches on the ranks mpirun gives.
// Exits 1 unless the two give bitwise equal weights.
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "comm/mpi_runtime.h"
#include "core/allocator.h"
#include "dist/initialize.h"
#include "dist/partitioned_init.h"
#include "examples/blobs.h"
#include "examples/classifier.h"

namespace {

constexpr int64_t kGlobalBatch = 64;

zt::dist::Config stage3_config(int world_size) {
  std::string json = fmt::format(R"({{
      "train_batch_size": {},
      "steps_per_print": 0,
      "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
      "zero_optimization": {{"stage": 3, "stage3_param_persistence_threshold": 0}}
    }})",
                                 kGlobalBatch);
  return zt::dist::parse_config(json, "partitioned_construction", world_size, nullptr);
}

std::vector<double> train(zt::comm::MpiRuntime& runtime, bool partitioned) {
  zt::dist::Config config = stage3_config(runtime.size());
  zt::MemoryAccounting& accounting = zt::cpu_allocator().accounting();
  const int64_t before = accounting.stats().live(zt::MemoryTag::param);
  accounting.reset_peak();
  zt::manual_seed(0);  // the same seed on every rank
  std::shared_ptr<examples::Classifier> model;
  if (partitioned) {
    zt::dist::PartitionedInit scope(runtime.world(), config);
    model = std::make_shared<examples::Classifier>(8, 32, 4);
  } else {
    model = std::make_shared<examples::Classifier>(8, 32, 4);
  }
  const int64_t built = accounting.stats().peak(zt::MemoryTag::param) - before;
  zt::Initialized initialized = zt::initialize(runtime, config, model);
  zt::dist::Engine& engine = *initialized.engine;
  int64_t micro_batch = kGlobalBatch / runtime.size(), first = runtime.rank() * micro_batch;
  for (int step = 0; step < 10; ++step) {
    examples::Blobs batch = examples::make_blobs(kGlobalBatch, 8, 4, 100 + step);
    zt::nn::TensorList outputs = engine.forward(batch.points.narrow(0, first, micro_batch),
                                                batch.labels.narrow(0, first, micro_batch));
    engine.backward(outputs[1]);
    engine.step();
  }
  if (runtime.rank() == 0) {
    fmt::print("built {}: construction peaked at {} of the {} parameter bytes on rank 0\n",
               partitioned ? "partitioned" : "whole", built, model->num_parameters() * 4);
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
    std::vector<double> whole = train(runtime, false);
    bool equal = whole == train(runtime, true);
    if (runtime.rank() == 0) {
      fmt::print("{} rank(s): built partitioned, the weights {} those built whole bit for bit\n",
                 runtime.size(), equal ? "equal" : "DIFFER FROM");
    }
    return equal ? 0 : 1;
  });
}
