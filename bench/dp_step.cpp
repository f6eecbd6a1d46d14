// One rank's side of bench/dp_step.sh: times training steps of an MLP under the engine at this
// world size (a fixed micro-batch per rank, so the work per rank stays the same as N grows) and
// rank 0 prints "N stage overlap median_ms_per_step parameters". Flags: `dp_step --help`.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "apps/cli_flags.h"
#include "apps/read_command_line.h"
#include "autograd/functions.h"
#include "bench/bench_mlp.h"
#include "core/factory.h"
#include "dist/initialize.h"
#include "nn/nn.h"

using namespace zt;

namespace {

const apps::CommandLine kDpStepCommandLine{
    "bench/dp_step",
    "Times training steps of an MLP (784-W-W-10, Adam) under the engine at this world size, a\n"
    "fixed micro-batch per rank; run under mpirun by bench/dp_step.sh.",
    {
        {"stage", "0|1|2|3", "0", "the ZeRO stage"},
        {"overlap", "0|1", "0", "overlap_comm: reduce gradients during backward"},
        {"steps", "K", "20", "steps timed (the first warms up and is left out)"},
        {"width", "W", "1024", "width of the two hidden layers"},
        {"batch", "B", "32", "samples per rank per step"},
    }};

struct DpStepOptions {
  int64_t stage, overlap, steps, width, batch;
};

}  // namespace

int main(int argc, char** argv) {
  DpStepOptions options{};
  std::optional<int> status =
      apps::read_command_line(argc, argv, kDpStepCommandLine, [&](const apps::Flags& flags) {
        options = {std::stoll(flags.get_choice("stage")), std::stoll(flags.get_choice("overlap")),
                   flags.get_int("steps", 2), flags.get_int("width", 1), flags.get_int("batch", 1)};
      });
  if (status) return *status;
  return comm::run_distributed_main(argc, argv, [&](comm::MpiRuntime& runtime) {
    auto [stage, overlap, steps, width, batch] = options;
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
