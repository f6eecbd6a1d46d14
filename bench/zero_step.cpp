// One rank's side of bench/zero_step.sh: time per training step of the same MLP at ZeRO stages
// 0, 1, 2 and 3 in one job. The four engines (each on its own copy of the model, same seed) are
// built up front and then stepped in turn, one step each per round, so that whatever else the
// machine is doing slows every stage alike and the ratios to stage 0 stay meaningful.
// Rank 0 prints one line per stage: "stage median_ms parameters". Flags: `zero_step --help`.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
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

// Two warm-up steps by default: the first creates Adam's state and records stage 3's module
// order, which the second is the first to prefetch by.
const apps::CommandLine kZeroStepCommandLine{
    "bench/zero_step",
    "Times a training step of one MLP (784-W..-10, Adam) at ZeRO stages 0-3 in one job, the\n"
    "stages stepped in turn; run under mpirun by bench/zero_step.sh.",
    {
        {"width", "W", "1024", "width of the hidden layers"},
        {"depth", "D", "4", "hidden layers"},
        {"batch", "B", "32", "samples per rank per step"},
        {"rounds", "R", "10", "timed steps per stage"},
        {"warmup", "K", "2", "untimed steps per stage first"},
        {"overlap", "-1|0|1", "-1", "overlap_comm at every stage (-1: DeepSpeed's, on at stage 3)"},
    }};

struct ZeroStepOptions {
  int64_t width, depth, batch, rounds, warmup, overlap;
};

}  // namespace

int main(int argc, char** argv) {
  ZeroStepOptions options{};
  std::optional<int> status =
      apps::read_command_line(argc, argv, kZeroStepCommandLine, [&](const apps::Flags& flags) {
        options = {flags.get_int("width", 1),  flags.get_int("depth", 1),
                   flags.get_int("batch", 1),  flags.get_int("rounds", 1),
                   flags.get_int("warmup", 0), std::stoll(flags.get_choice("overlap"))};
      });
  if (status) return *status;
  return comm::run_distributed_main(argc, argv, [&](comm::MpiRuntime& runtime) {
    auto [width, depth, batch, rounds, warmup, overlap] = options;
    std::string overlap_entry =
        overlap < 0 ? "" : fmt::format(R"("overlap_comm": {}, )", overlap ? "true" : "false");

    constexpr int kStages = 4;
    std::array<Initialized, kStages> engines;
    for (int stage = 0; stage < kStages; ++stage) {
      std::string text = fmt::format(R"({{
        "train_micro_batch_size_per_gpu": {}, "steps_per_print": 0,
        "optimizer": {{"type": "Adam", "params": {{"lr": 0.001}}}},
        "zero_optimization": {{"stage": {}, {}"reduce_bucket_size": 500000}}
      }})",
                                     batch, stage, overlap_entry);
      dist::Config config = dist::parse_config(text, "zero_step", runtime.size(), nullptr);
      manual_seed(7);
      engines[size_t(stage)] = initialize(runtime, config, bench::build_mlp(width, depth));
    }
    const bench::MlpBatch data = bench::mlp_batch(batch);

    auto timed_step = [&](dist::Engine& engine) {
      return bench::timed_step_ms(runtime.world(), engine, data);
    };
    for (int64_t step = 0; step < warmup; ++step) {
      for (auto& initialized : engines) timed_step(*initialized.engine);
    }
    std::array<std::vector<double>, kStages> step_ms;
    for (int64_t round = 0; round < rounds; ++round) {
      // Each round starts at another stage, so no stage always follows the same one (whose
      // freed buffers the allocator's cache hands to the next).
      for (int turn = 0; turn < kStages; ++turn) {
        int stage = int((round + turn) % kStages);
        step_ms[size_t(stage)].push_back(timed_step(*engines[size_t(stage)].engine));
      }
    }
    if (runtime.rank() == 0) {
      for (int stage = 0; stage < kStages; ++stage) {
        std::vector<double>& times = step_ms[size_t(stage)];
        std::sort(times.begin(), times.end());
        fmt::print("{} {:.3f} {}\n", stage, times[times.size() / 2],
                   engines[size_t(stage)].engine->module().num_parameters());
      }
    }
    return 0;
  });
}
