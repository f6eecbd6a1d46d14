// One rank's side of bench/dp_step.sh: times training steps of an MLP under the engine at this
// world size (a fixed micro-batch per rank, so the work per rank stays the same as N grows) and
// rank 0 prints "N overlap ms_per_step".
// Usage (under mpirun): dp_step [--stage S] [--overlap 0|1] [--steps K] [--width W]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "apps/cli_flags.h"
#include "autograd/functions.h"
#include "bench/bench_mlp.h"
#include "core/factory.h"
#include "dist/initialize.h"
#include "nn/nn.h"

using namespace zt;

int main(int argc, char** argv) {
  return comm::run_distributed_main(argc, argv, [&](comm::MpiRuntime& runtime) {
    apps::Flags flags(argc, argv, {"stage", "overlap", "steps", "width", "batch"});
    int64_t stage = flags.get_int("stage", 0, 0);
    int64_t overlap = flags.get_int("overlap", 0, 0);
    int64_t steps = flags.get_int("steps", 20, 2);
    int64_t width = flags.get_int("width", 1024, 1);
    int64_t batch = flags.get_int("batch", 32, 1);
    std::string text = fmt::format(R"({{
      "train_micro_batch_size_per_gpu": {}, "steps_per_print": 0,
      "optimizer": {{"type": "Adam", "params": {{"lr": 0.001}}}},
      "zero_optimization": {{"stage": {}, "overlap_comm": {}, "reduce_bucket_size": 500000,
                            "stage3_param_persistence_threshold": 0}}
    }})",
                                   batch, stage, overlap ? "true" : "false");
    dist::Config config = dist::parse_config(text, "dp_step", runtime.size(), nullptr);
    manual_seed(7);
    auto model = bench::build_mlp(width, 2);
    Initialized initialized = initialize(runtime, config, model);
    dist::Engine& engine = *initialized.engine;
    Tensor inputs = randn({batch, 784});
    std::vector<int64_t> labels(static_cast<size_t>(batch));
    for (int64_t i = 0; i < batch; ++i) labels[size_t(i)] = i % 10;
    Tensor targets = from_int64(labels, {batch});
    std::vector<double> step_ms;
    for (int64_t step = 0; step < steps; ++step) {
      runtime.world().barrier();
      auto start = std::chrono::steady_clock::now();
      engine.backward(cross_entropy(engine.forward(inputs), targets));
      engine.step();
      runtime.world().barrier();
      step_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
    std::sort(step_ms.begin() + 1, step_ms.end());  // step 0 warms up and is left out
    double median = step_ms[size_t(1 + (steps - 1) / 2)];
    if (runtime.rank() == 0) {
      fmt::print("{} {} {} {:.3f} {}\n", runtime.size(), stage, overlap, median,
                 engine.module().num_parameters());
    }
    return 0;
  });
}
