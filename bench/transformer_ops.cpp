// The fused transformer kernels against their compositions from primitive ops, on the CPU in
// f32 at a GPT's sizes: rms_norm over [B*T, C] = [2048, 384] and rotary_embedding over
// [B, H, T, D] = [8, 6, 256, 64], forward and backward. For each: the median time of a
// forward plus backward, and the bytes the forward keeps for backward (the allocator's live
// activation bytes with the graph alive, less the output's). Fused should win both.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "apps/read_command_line.h"
#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/parallel.h"

namespace {

const zt::apps::CommandLine kTransformerOpsCommandLine{
    "bench/transformer_ops",
    "The fused rms_norm and rotary_embedding against their compositions from primitive ops\n"
    "(rms_norm_math, rotary_embedding_math) on the CPU in f32: forward + backward time and\n"
    "the bytes kept for backward, at a GPT's sizes.",
    {}};

using Op = std::function<zt::Tensor(const zt::Tensor&)>;

struct Measure {
  double seconds;
  int64_t saved_bytes;
};

int64_t live_activation_bytes() {
  return zt::cpu_allocator().accounting().stats().live(zt::MemoryTag::activation);
}

// Median forward + backward time over `repeats` runs after two warm-ups, and the bytes that
// the graph of one forward holds beyond its output.
Measure measure(const Op& op, const zt::Tensor& input, int repeats) {
  zt::Tensor grad = zt::rand(input.sizes());
  auto run = [&] {
    zt::Tensor x = input.detach();
    x.set_requires_grad(true);
    zt::sum(zt::mul(op(x), grad)).backward();
  };
  run();
  run();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(times.begin(), times.begin() + int64_t(times.size() / 2), times.end());
  zt::Tensor x = input.detach();
  x.set_requires_grad(true);
  const int64_t before = live_activation_bytes();
  zt::Tensor out = op(x);
  const int64_t saved = live_activation_bytes() - before - int64_t(out.nbytes());
  return {times[times.size() / 2], saved};
}

void report(const std::string& name, const Measure& fused, const Measure& composed) {
  fmt::print("{:<34} {:>10.3f} {:>10.3f} {:>8.2f}x {:>11.2f} {:>11.2f}\n", name,
             fused.seconds * 1e3, composed.seconds * 1e3, composed.seconds / fused.seconds,
             double(fused.saved_bytes) / 1048576.0, double(composed.saved_bytes) / 1048576.0);
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<int> status = zt::apps::read_command_line(argc, argv, kTransformerOpsCommandLine,
                                                          [](const zt::apps::Flags&) {});
  if (status) return *status;
  zt::MemoryTagGuard as_activation(zt::MemoryTag::activation);
  fmt::print("threads: {}\n", zt::num_threads());
  fmt::print("{:<34} {:>10} {:>10} {:>9} {:>11} {:>11}\n", "case (forward + backward)", "fused ms",
             "composed", "speedup", "fused MiB", "composed");
  zt::Tensor rows = zt::randn({2048, 384});
  zt::Tensor weight = zt::rand({384});
  weight.set_requires_grad(true);
  report(
      "rms_norm [2048, 384] with weight",
      measure([&](const zt::Tensor& x) { return zt::rms_norm(x, {384}, weight); }, rows, 21),
      measure([&](const zt::Tensor& x) { return zt::rms_norm_math(x, {384}, weight); }, rows, 21));
  auto [cos, sin] = zt::rotary_tables(0, 256, 64);
  zt::Tensor heads = zt::randn({8, 6, 256, 64});
  report("rotary_embedding [8, 6, 256, 64]",
         measure([&](const zt::Tensor& x) { return zt::rotary_embedding(x, cos, sin); }, heads, 21),
         measure([&](const zt::Tensor& x) { return zt::rotary_embedding_math(x, cos, sin); }, heads,
                 21));
  return 0;
}
