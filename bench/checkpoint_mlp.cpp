// What activation checkpointing buys and costs on a 32-layer MLP (width x width Linear + ReLU
// per layer, f32): peak bytes tagged `activation` over one forward+backward, and the median
// step time, without checkpointing and with checkpoint_sequential at several segment counts,
// each as a ratio against no checkpointing measured in the same run.
// Usage: bench/checkpoint_mlp [width=512] [batch=64] [repeats=5]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <vector>

#include "autograd/checkpoint.h"
#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "nn/nn.h"

using namespace zt;

namespace {

constexpr int64_t kDepth = 32;

struct StepCost {
  int64_t peak_activation_bytes = 0;
  double median_step_ms = 0.0;
};

// One forward+backward of sum(model(x)) through `forward`, under the activation tag (so
// recomputation inside backward counts as activation too), measured `repeats` times.
StepCost measure(nn::Sequential& model, const Tensor& x, int repeats,
                 const std::function<Tensor(const Tensor&)>& forward) {
  MemoryAccounting& accounting = cpu_allocator().accounting();
  StepCost cost;
  std::vector<double> step_ms;
  for (int repeat = 0; repeat < repeats + 1; ++repeat) {  // the first run warms up
    MemoryTagGuard activations(MemoryTag::activation);
    accounting.reset_peak();
    const int64_t live_before = accounting.stats().live(MemoryTag::activation);
    auto start = std::chrono::steady_clock::now();
    Tensor out = forward(x);
    sum(out).backward();
    double elapsed_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    cost.peak_activation_bytes = std::max(
        cost.peak_activation_bytes, accounting.stats().peak(MemoryTag::activation) - live_before);
    if (repeat > 0) step_ms.push_back(elapsed_ms);
    model.zero_grad();
  }
  std::nth_element(step_ms.begin(), step_ms.begin() + int64_t(step_ms.size() / 2), step_ms.end());
  cost.median_step_ms = step_ms[step_ms.size() / 2];
  return cost;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t width = argc > 1 ? std::atoll(argv[1]) : 512;
  const int64_t batch = argc > 2 ? std::atoll(argv[2]) : 64;
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 5;

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

  fmt::print("{}-layer MLP ({} modules), width {}, batch {}, f32; median of {} steps\n", kDepth,
             model->size(), width, batch, repeats);
  StepCost plain = measure(*model, x, repeats, [&](const Tensor& in) { return (*model)(in); });
  fmt::print("{:>22} {:>14} {:>8} {:>10} {:>8}\n", "", "peak act MiB", "ratio", "step ms", "ratio");
  auto print_row = [&](const std::string& label, const StepCost& cost) {
    fmt::print("{:>22} {:>14.2f} {:>8.2f} {:>10.1f} {:>8.2f}\n", label,
               double(cost.peak_activation_bytes) / (1 << 20),
               double(cost.peak_activation_bytes) / double(plain.peak_activation_bytes),
               cost.median_step_ms, cost.median_step_ms / plain.median_step_ms);
  };
  print_row("no checkpointing", plain);
  for (int64_t segments : {2, 4, 6, 8, 11}) {
    StepCost cost = measure(*model, x, repeats, [&](const Tensor& in) {
      return checkpoint_sequential(*model, segments, in);
    });
    print_row(fmt::format("{} segments", segments), cost);
  }
  return 0;
}
