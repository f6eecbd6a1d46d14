// One trial of bench/zero_capacity.sh: does an MLP of a given width take training steps at ZeRO
// stage S under a per-rank memory limit? Every rank builds the model, wraps it in the engine,
// then sets the allocator's limit and runs the steps. Success: rank 0 prints one line
//   fit <stage> <width> <parameters> <peak> <param> <grad> <optim_state> <activation>
//   <activation_offload> <comm> <other>
// with the step peak of the rank that peaked highest and that rank's per-kind peaks, all in
// bytes. Failure: an allocation past the limit throws OutOfMemoryError ("out of memory on cpu:
// ...") on some rank, and comm::run_distributed_main ends the whole job with a non-zero status,
// so a rank that ran out never leaves the others waiting in a collective. The script treats that
// as "does not fit"; each trial is its own mpirun job, so no state survives a failed one.
//
// What the limit covers: every byte the accounted host allocator hands out after the engine is
// constructed (parameters, gradients, optimizer state, activations, communication buffers),
// not the process's other heap, MPI's own buffers or the code. The model is built and the
// engine constructed with no limit so that every stage is built the same way: whole on every
// rank (stages 0-2 hold it whole anyway; only stage 3 could be built inside
// dist::PartitionedInit, which bench/offload does), the engine copying it into flat buffers and
// only then (stage 3) dropping the full copy. Limiting construction would measure that, not the
// stage.
// Flags: `zero_capacity --help`.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/cli_flags.h"
#include "apps/read_command_line.h"
#include "autograd/functions.h"
#include "bench/bench_mlp.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "dist/initialize.h"
#include "nn/nn.h"

using namespace zt;

namespace {

// Two steps by default: Adam creates its moments in the first update, so only the second
// backward runs with the optimizer state already live, which is the steady-state peak.
// Stage 3's prefetch holds the next modules' parameters gathered ahead of use: speed bought with
// memory. Off by default (0 elements), as a run sized to fit would set it; DeepSpeed's default
// (5e7 elements) would gather every layer of these models at once.
const apps::CommandLine kZeroCapacityCommandLine{
    "bench/zero_capacity",
    "One trial of bench/zero_capacity.sh: does an MLP of this width take training steps at\n"
    "this ZeRO stage under a per-rank memory limit? Prints \"fit ...\" if it does.",
    {
        {"stage", "0|1|2|3", "0", "the ZeRO stage"},
        {"width", "W", "256", "width of the hidden layers"},
        {"depth", "D", "4", "hidden layers"},
        {"batch", "B", "8", "samples per rank per step"},
        {"limit-mib", "M", "64", "memory limit per rank in MiB after construction (0: none)"},
        {"steps", "K", "2", "training steps"},
        {"prefetch", "ELEMENTS", "0", "stage 3's prefetch bucket in elements (0: off)"},
    }};

struct CapacityOptions {
  int64_t stage, width, depth, batch, limit_mib, steps, prefetch;
};

}  // namespace

int main(int argc, char** argv) {
  CapacityOptions options{};
  std::optional<int> status =
      apps::read_command_line(argc, argv, kZeroCapacityCommandLine, [&](const apps::Flags& flags) {
        options = {std::stoll(flags.get_choice("stage")),
                   flags.get_int("width", 1),
                   flags.get_int("depth", 1),
                   flags.get_int("batch", 1),
                   flags.get_int("limit-mib", 0),
                   flags.get_int("steps", 1),
                   flags.get_int("prefetch", 0)};
      });
  if (status) return *status;
  return comm::run_distributed_main(argc, argv, [&](comm::MpiRuntime& runtime) {
    auto [stage, width, depth, batch, limit_mib, steps, prefetch] = options;
    // Threshold 0: stage 3 partitions every module, so the measurement is of ZeRO itself and
    // not of which small layers happen to stay whole. overlap_comm off: reductions in flight
    // would hold their buffers longer.
    std::string text = fmt::format(R"({{
      "train_micro_batch_size_per_gpu": {}, "steps_per_print": 0,
      "optimizer": {{"type": "Adam", "params": {{"lr": 0.001}}}},
      "zero_optimization": {{"stage": {}, "overlap_comm": false, "reduce_bucket_size": 500000,
                            "stage3_param_persistence_threshold": 0,
                            "stage3_prefetch_bucket_size": {}}}
    }})",
                                   batch, stage, prefetch);
    dist::Config config = dist::parse_config(text, "zero_capacity", runtime.size(), nullptr);
    manual_seed(7);
    auto model = bench::build_mlp(width, depth);
    Initialized initialized = initialize(runtime, config, model);
    dist::Engine& engine = *initialized.engine;

    MemoryAccounting& accounting = cpu_allocator().accounting();
    accounting.reset_peak();
    accounting.set_limit(limit_mib << 20);
    Tensor inputs = randn({batch, 784});
    std::vector<int64_t> labels(static_cast<size_t>(batch));
    for (int64_t i = 0; i < batch; ++i) labels[size_t(i)] = i % 10;
    Tensor targets = from_int64(labels, {batch});
    for (int64_t step = 0; step < steps; ++step) {
      engine.backward(cross_entropy(engine.forward(inputs), targets));
      engine.step();
    }
    accounting.set_limit(0);  // the report below allocates a little

    // Rank 0 reports the rank whose step peaked highest: the one the limit binds first.
    MemoryStats stats = accounting.stats();
    constexpr size_t kFields = 1 + kMemoryTagCount;
    std::array<double, kFields> mine{};
    mine[0] = double(stats.total_peak_bytes);
    for (size_t tag = 0; tag < kMemoryTagCount; ++tag)
      mine[1 + tag] = double(stats.peak_bytes[tag]);
    Tensor local = from_values(mine, {int64_t(kFields)}, {.dtype = DType::f64});
    Tensor gathered = empty({runtime.size() * int64_t(kFields)}, {.dtype = DType::f64});
    runtime.world().all_gather(local, gathered);
    if (runtime.rank() == 0) {
      std::vector<double> all = gathered.to_vector();
      size_t highest = 0;
      for (size_t r = 1; r < size_t(runtime.size()); ++r) {
        if (all[r * kFields] > all[highest * kFields]) highest = r;
      }
      fmt::print("fit {} {} {}", stage, width, engine.module().num_parameters());
      for (size_t field = 0; field < kFields; ++field) {
        fmt::print(" {}", int64_t(all[highest * kFields + field]));
      }
      fmt::print("\n");
    }
    return 0;
  });
}
