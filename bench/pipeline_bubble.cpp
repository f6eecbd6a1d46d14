// The pipeline bubble measured from the pipeline engine's instruction timestamps next to the
// formulas (p-1)/(m+p-1) for 1F1B and (p-1)/(v*m+p-1) interleaved. Every rank is one stage
// (p = the world size); each virtual stage is one layer that sleeps `forward_ms / v` in forward
// and twice that in backward, as a device would compute while the host waits, so the numbers
// do not depend on how many cores the ranks share. Rank 0 prints one line per (m, schedule):
// "p m v measured formula measured/formula". Run: mpirun -np 4 bench/pipeline_bubble; with
// --trace DIR each rank also writes the m = 8 1F1B case's last batch as a trace.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apps/cli_flags.h"
#include "apps/read_command_line.h"
#include "autograd/functions.h"
#include "comm/mpi_runtime.h"
#include "core/factory.h"
#include "dist/config.h"
#include "pipeline/pipeline_engine.h"

using namespace zt;

namespace {

const apps::CommandLine kCommandLine{
    "bench/pipeline_bubble",
    "Measures the pipeline bubble of 1F1B and interleaved 1F1B (2 chunks) for m = 4, 8, 16\n"
    "micro-batches against the formulas, one stage per rank; run under mpirun.",
    {
        {"forward-ms", "T", "20", "forward time of one micro-batch on one stage (backward: 2T)"},
        {"batches", "K", "3", "batches run per case; the last one is measured"},
        {"trace", "DIR", "",
         "write each rank's trace of the m = 8 1F1B case's last batch to DIR (for "
         "scripts/plot-gantt)",
         "no trace"},
    }};

void sleep_ms(double ms) {
  std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
}

// y = x * 1, sleeping in forward and, through a hook on y, in backward.
class SleepLayer final : public nn::Module {
 public:
  explicit SleepLayer(double forward_ms) : forward_ms_(forward_ms) {
    weight_ = register_parameter("weight", ones({1}));
  }
  std::string type_name() const override { return "SleepLayer"; }

 protected:
  Tensor forward(const Tensor& x) override {
    sleep_ms(forward_ms_);
    Tensor y = x * weight_;
    const double backward_ms = 2.0 * forward_ms_;
    if (y.requires_grad())
      y.register_hook([backward_ms](const Tensor& grad) {
        sleep_ms(backward_ms);
        return grad;
      });
    return y;
  }

 private:
  double forward_ms_;
  Tensor weight_;
};

// The mean over stages of the idle fraction of the batch: from the batch's start to the end
// of the last backward on any stage, the time outside forward and backward passes.
double measured_bubble(pipeline::PipelineEngine& engine, comm::Communicator& world) {
  double busy = 0.0, end = 0.0;
  for (const pipeline::InstructionTiming& timing : engine.last_timeline()) {
    const auto kind = timing.instruction.kind;
    if (kind != pipeline::InstructionKind::forward_pass &&
        kind != pipeline::InstructionKind::backward_pass)
      continue;
    busy += timing.end_seconds - timing.start_seconds;
    end = std::max(end, timing.end_seconds);
  }
  Tensor longest = full({1}, end, {.dtype = DType::f64});
  world.all_reduce(longest, comm::ReduceOperation::max);
  Tensor idle = full({1}, 1.0 - busy / longest.item(), {.dtype = DType::f64});
  world.all_reduce(idle);
  return idle.item() / world.size();
}

}  // namespace

int main(int argc, char** argv) {
  double forward_ms = 4.0;
  int64_t batches = 3;
  std::string trace_dir;
  std::optional<int> status =
      apps::read_command_line(argc, argv, kCommandLine, [&](const apps::Flags& flags) {
        forward_ms = flags.get_double("forward-ms", 0.0);
        batches = flags.get_int("batches", 1);
        if (flags.has("trace")) trace_dir = flags.get_string("trace");
      });
  if (status) return *status;
  return comm::run_distributed_main(argc, argv, [&](comm::MpiRuntime& runtime) {
    comm::Communicator& world = runtime.world();
    const int stages = world.size();
    comm::ProcessGrid grid(world, {.data = 1, .pipeline = stages});
    if (world.rank() == 0) fmt::print("p m v measured formula measured/formula\n");
    for (int micro_batches : {4, 8, 16}) {
      for (int chunks : {1, 2}) {
        if (chunks > 1 && stages < 2) continue;
        // The traced case's last batch is its step `batches`.
        const bool traced = !trace_dir.empty() && micro_batches == 8 && chunks == 1;
        const std::string trace =
            traced ? fmt::format(
                         R"(, "trace": {{"enabled": true, "output_path": "{}", "steps": "{}"}})",
                         trace_dir, batches)
                   : "";
        dist::Config config = dist::parse_config(
            fmt::format(R"({{"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": {},
                "steps_per_print": 0, "optimizer": {{"type": "SGD", "params": {{"lr": 0.0}}}},
                "pipeline": {{"partition": "uniform", "schedule": "{}", "virtual_stages": {}}}{}}})",
                        micro_batches, chunks > 1 ? "interleaved" : "1f1b", chunks, trace),
            "pipeline_bubble", 1, nullptr);
        pipeline::LayerSpecs specs;
        for (int layer = 0; layer < stages * chunks; ++layer)
          specs.push_back({.type_name = "SleepLayer", .build = [&] {
                             return std::make_shared<SleepLayer>(forward_ms / chunks);
                           }});
        auto loss = [](const Tensor& outputs, const Tensor&) { return sum(outputs); };
        pipeline::PipelineEngine engine(config, specs, loss, ones({1, 8}), grid);
        double bubble = 0.0;
        for (int64_t batch = 0; batch < batches; ++batch) {
          engine.train_batch([] { return pipeline::MicroBatch{ones({1, 8}), Tensor()}; });
          bubble = measured_bubble(engine, world);
        }
        double formula = pipeline::bubble_formula(engine.schedule_shape());
        if (world.rank() == 0)
          fmt::print("{} {} {} {:.4f} {:.4f} {:.3f}\n", stages, micro_batches, chunks, bubble,
                     formula, formula > 0 ? bubble / formula : 0.0);
      }
    }
    return 0;
  });
}
