// What the observability code costs a ZeRO stage-3 training step of one MLP: the same step with
// no block on ("off": only the span sites' one branch each), with a trace configured whose
// window the run never reaches ("trace idle": the module hooks and the observing communicator
// run, nothing is recorded), and with the comms logger on. The engines are stepped in turn, one
// step each per round, so that a busy neighbour slows all alike. Rank 0 prints one line per
// variant: "name median_ms ratio_to_off". Run under mpirun (or alone); flags: --help.
#include <fmt/format.h>

#include <algorithm>
#include <array>
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

using namespace zt;

namespace {

const apps::CommandLine kObserveOverheadCommandLine{
    "bench/observe_overhead",
    "Times a ZeRO stage-3 step of one MLP (784-W..-10, Adam) with the observability blocks off,\n"
    "with an idle trace and with the comms logger, stepped in turn.",
    {
        {"width", "W", "512", "width of the hidden layers"},
        {"depth", "D", "4", "hidden layers"},
        {"batch", "B", "32", "samples per rank per step"},
        {"rounds", "R", "20", "timed steps per variant"},
    }};

constexpr std::array<const char*, 3> kVariants = {"off", "trace_idle", "comms_logger"};
constexpr std::array<const char*, 3> kBlocks = {
    "",
    R"(, "trace": {"enabled": true, "output_path": "observe_overhead_traces", "steps": 1000000})",
    R"(, "comms_logger": {"enabled": true})"};

}  // namespace

int main(int argc, char** argv) {
  int64_t width = 0, depth = 0, batch = 0, rounds = 0;
  std::optional<int> status = apps::read_command_line(argc, argv, kObserveOverheadCommandLine,
                                                      [&](const apps::Flags& flags) {
                                                        width = flags.get_int("width", 1);
                                                        depth = flags.get_int("depth", 1);
                                                        batch = flags.get_int("batch", 1);
                                                        rounds = flags.get_int("rounds", 1);
                                                      });
  if (status) return *status;
  return comm::run_distributed_main(argc, argv, [&](comm::MpiRuntime& runtime) {
    std::array<Initialized, kVariants.size()> engines;
    for (size_t v = 0; v < kVariants.size(); ++v) {
      std::string text = fmt::format(R"({{
        "train_micro_batch_size_per_gpu": {}, "steps_per_print": 0,
        "optimizer": {{"type": "Adam", "params": {{"lr": 0.001}}}},
        "zero_optimization": {{"stage": 3, "stage3_param_persistence_threshold": 0}}{}
      }})",
                                     batch, kBlocks[v]);
      dist::Config config = dist::parse_config(text, "observe_overhead", runtime.size(), nullptr);
      manual_seed(7);
      engines[v] = initialize(runtime, config, bench::build_mlp(width, depth));
    }
    const bench::MlpBatch data = bench::mlp_batch(batch);
    auto timed_step = [&](dist::Engine& engine) {
      return bench::timed_step_ms(runtime.world(), engine, data);
    };
    for (int warmup = 0; warmup < 2; ++warmup) {
      for (auto& initialized : engines) timed_step(*initialized.engine);
    }
    std::array<std::vector<double>, kVariants.size()> step_ms;
    for (int64_t round = 0; round < rounds; ++round) {
      for (size_t turn = 0; turn < kVariants.size(); ++turn) {
        size_t v = (size_t(round) + turn) % kVariants.size();
        step_ms[v].push_back(timed_step(*engines[v].engine));
      }
    }
    if (runtime.rank() == 0) {
      std::vector<double> medians;
      for (auto& times : step_ms) {
        std::sort(times.begin(), times.end());
        medians.push_back(times[times.size() / 2]);
      }
      for (size_t v = 0; v < kVariants.size(); ++v)
        fmt::print("{} {:.3f} {:.3f}\n", kVariants[v], medians[v], medians[v] / medians[0]);
    }
    return 0;
  });
}
