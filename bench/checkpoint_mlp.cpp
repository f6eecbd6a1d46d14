// What activation checkpointing buys and costs on a 32-layer MLP (width x width Linear + ReLU
// per layer, f32): peak bytes by tag (activation, activation_offload, all tags) over one
// forward+backward and the median step time, without checkpointing, with checkpoint_sequential,
// and with it and cpu_checkpointing, each as a ratio against no checkpointing in the same run.
// The segment count and the other keys come from a ds_config's activation_checkpointing block
// (number_checkpoints, cpu_checkpointing, contiguous_memory_optimization, profile); without one,
// 8 segments and a sweep over segment counts. Flags: `bench/checkpoint_mlp --help`.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/deepspeed_flags.h"
#include "apps/read_command_line.h"
#include "autograd/checkpoint.h"
#include "autograd/checkpointing_options.h"
#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/activation_checkpointing.h"
#include "dist/config.h"
#include "dist/initialize.h"
#include "nn/checkpoint_sequential.h"
#include "nn/nn.h"

using namespace zt;

namespace {

constexpr int64_t kDepth = 32;

const apps::CommandLine kCheckpointMlpCommandLine{
    "bench/checkpoint_mlp",
    "Peak activation memory and step time of a 32-layer MLP without activation checkpointing,\n"
    "with checkpoint_sequential, and with it and cpu_checkpointing, as ratios.",
    {
        apps::deepspeed_config_flag(),
        {"width", "W", "512", "width of every layer"},
        {"batch", "B", "64", "samples per step"},
        {"repeats", "R", "5", "timed steps (the median counts), after one warm-up step"},
    }};

struct CheckpointMlpOptions {
  std::string deepspeed_config;
  int64_t width = 0, batch = 0, repeats = 0;
};

struct StepCost {
  int64_t peak_activation_bytes = 0;
  int64_t peak_offload_bytes = 0;
  int64_t peak_total_bytes = 0;  // every tag, the inputs and parameters' gradients included
  double median_step_ms = 0.0;
  CheckpointingProfile profile;  // per step, when profiling
};

// One forward+backward of sum(model(x)) through `forward` under `options`, under the activation
// tag (so recomputation inside backward counts as activation too), measured `repeats` times.
// Peaks are measured above the bytes live before the step.
StepCost measure(nn::Sequential& model, const Tensor& x, int repeats,
                 const CheckpointingOptions& options,
                 const std::function<Tensor(const Tensor&)>& forward) {
  configure_checkpointing(options);
  reset_checkpointing_profile();
  MemoryAccounting& accounting = cpu_allocator().accounting();
  StepCost cost;
  std::vector<double> step_ms;
  for (int repeat = 0; repeat < repeats + 1; ++repeat) {  // the first run warms up
    if (repeat == 1) reset_checkpointing_profile();
    MemoryTagGuard activations(MemoryTag::activation);
    accounting.reset_peak();
    const MemoryStats before = accounting.stats();
    auto start = std::chrono::steady_clock::now();
    Tensor out = forward(x);
    sum(out).backward();
    double elapsed_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const MemoryStats after = accounting.stats();
    auto peak_above = [&](MemoryTag tag) { return after.peak(tag) - before.live(tag); };
    cost.peak_activation_bytes =
        std::max(cost.peak_activation_bytes, peak_above(MemoryTag::activation));
    cost.peak_offload_bytes =
        std::max(cost.peak_offload_bytes, peak_above(MemoryTag::activation_offload));
    cost.peak_total_bytes =
        std::max(cost.peak_total_bytes, after.total_peak_bytes - before.total_live_bytes);
    if (repeat > 0) step_ms.push_back(elapsed_ms);
    model.zero_grad();
  }
  std::nth_element(step_ms.begin(), step_ms.begin() + int64_t(step_ms.size() / 2), step_ms.end());
  cost.median_step_ms = step_ms[step_ms.size() / 2];
  cost.profile = checkpointing_profile();
  cost.profile.recompute_seconds /= double(repeats);
  cost.profile.recompute_count /= repeats;
  configure_checkpointing(CheckpointingOptions{});
  return cost;
}

// One measurement of the three ways, or a sweep without a config.
int run(const CheckpointMlpOptions& options) {
  const int64_t width = options.width, batch = options.batch;
  const int repeats = int(options.repeats);

  // Without a config: 8 segments (about sqrt of the 64 modules), nothing else on.
  CheckpointingOptions configured{.number_checkpoints = 8};
  if (!options.deepspeed_config.empty()) {
    std::vector<std::string> warnings;
    dist::Config config = dist::load_config(options.deepspeed_config, 1, &warnings);
    for (const std::string& warning : warnings) fmt::print(stderr, "warning: {}\n", warning);
    configured = dist::checkpointing_options_of(config.activation_checkpointing);
    if (configured.number_checkpoints == 0) {
      fmt::print(stderr,
                 "{}: activation_checkpointing.number_checkpoints: expected the number of "
                 "checkpointed segments (1..{}), got none\n",
                 options.deepspeed_config, 2 * kDepth);
      return 1;
    }
  }
  const int64_t segments = std::min<int64_t>(configured.number_checkpoints, 2 * kDepth);

  manual_seed(0);
  auto model = std::make_shared<nn::Sequential>();
  {
    MemoryTagGuard params(MemoryTag::param);
    for (int64_t layer = 0; layer < kDepth; ++layer) {
      model->push_back(std::make_shared<nn::Linear>(width, width));
      model->push_back(std::make_shared<nn::ReLU>());
    }
  }
  Tensor x = uniform({batch, width}, -1.0, 1.0);

  fmt::print(
      "{}-layer MLP ({} modules), width {}, batch {}, f32; median of {} steps{}\n", kDepth,
      model->size(), width, batch, repeats,
      options.deepspeed_config.empty() ? "" : "; checkpointing from " + options.deepspeed_config);
  auto plain_forward = [&](const Tensor& in) { return (*model)(in); };
  StepCost plain = measure(*model, x, repeats, CheckpointingOptions{}, plain_forward);
  fmt::print("{:>34} {:>12} {:>12} {:>10} {:>7} {:>9} {:>7} {:>14}\n", "", "activation",
             "act_offload", "all tags", "ratio", "step ms", "ratio", "recompute ms");
  fmt::print("{:>34} {:>12} {:>12} {:>10}\n", "", "peak MiB", "peak MiB", "peak MiB");
  auto mib = [](int64_t bytes) { return double(bytes) / double(1 << 20); };
  auto print_row = [&](const std::string& label, const StepCost& cost) {
    std::string recompute = cost.profile.recompute_count > 0
                                ? fmt::format("{:.1f} ({}x)", 1e3 * cost.profile.recompute_seconds,
                                              cost.profile.recompute_count)
                                : "-";
    fmt::print("{:>34} {:>12.2f} {:>12.2f} {:>10.2f} {:>7.2f} {:>9.1f} {:>7.2f} {:>14}\n", label,
               mib(cost.peak_activation_bytes), mib(cost.peak_offload_bytes),
               mib(cost.peak_total_bytes),
               double(cost.peak_activation_bytes) / double(plain.peak_activation_bytes),
               cost.median_step_ms, cost.median_step_ms / plain.median_step_ms, recompute);
  };
  print_row("no checkpointing", plain);
  auto checkpointed = [&](int64_t count) {
    return [&, count](const Tensor& in) { return checkpoint_sequential(*model, count, in); };
  };
  CheckpointingOptions kept_on_device = configured;
  kept_on_device.cpu_checkpointing = false;
  CheckpointingOptions offloaded = configured;
  offloaded.partition_activations = true;  // what DeepSpeed's rule asks alongside it
  offloaded.cpu_checkpointing = true;
  print_row(fmt::format("{} segments", segments),
            measure(*model, x, repeats, kept_on_device, checkpointed(segments)));
  print_row(fmt::format("{} segments, cpu_checkpointing", segments),
            measure(*model, x, repeats, offloaded, checkpointed(segments)));
  if (options.deepspeed_config.empty()) {
    for (int64_t count : {2, 4, 6, 11}) {
      print_row(fmt::format("{} segments", count),
                measure(*model, x, repeats, kept_on_device, checkpointed(count)));
    }
  }
  fmt::print(
      "activation: peak above the step's start; act_offload: cpu_checkpointing's host copies; "
      "ratio: activation peak and step time over no checkpointing\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CheckpointMlpOptions options;
  std::optional<int> status =
      apps::read_command_line(argc, argv, kCheckpointMlpCommandLine, [&](const apps::Flags& flags) {
        options = {flags.get_string("deepspeed_config"), flags.get_int("width", 1),
                   flags.get_int("batch", 1), flags.get_int("repeats", 1)};
      });
  if (status) return *status;
  try {
    return run(options);
  } catch (const std::exception& error) {
    fmt::print(stderr, "bench/checkpoint_mlp: {}\n", error.what());
    return 1;
  }
}
