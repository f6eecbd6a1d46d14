// Block-sparse attention against the project's dense fused attention on the CPU: for each
// mode at its DeepSpeed defaults (block 16) and each T, forward and forward + backward times
// of both, their ratio, and the layout's density (active blocks over the blocks dense
// attention computes: all of them, or the lower triangle under the causal rule). The sparse
// kernel's cost should follow the density: ratio / density near 1. B=1, H=8, E=64, f32, best of
// repeated runs after a warm-up. Flags: `bench/sparse_attention --help`.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/read_command_line.h"
#include "core/factory.h"
#include "core/ops/attention.h"
#include "core/ops/block_sparse_attention.h"
#include "core/parallel.h"

namespace {

using namespace zt;

const apps::CommandLine kSparseBenchCommandLine{
    "bench/sparse_attention",
    "Time of block-sparse attention against the dense fused attention (B=1, H=8, E=64, f32)\n"
    "per mode and sequence length, beside each layout's density.",
    {
        {"lengths", "LIST", "1024,2048,4096,8192", "sequence lengths T, comma-separated"},
        {"modes", "LIST", "fixed,variable,bigbird,bslongformer,dense", "layout modes to time"},
        {"attention", "KIND", "bidirectional", "bidirectional, or unidirectional (causal)"},
        {"heads", "H", "8", "attention heads"},
        {"repeats", "R", "3", "timed runs per case; the best counts"},
        {"clock", "KIND", "wall", "wall, or cpu: the process's CPU time (for a loaded machine)"},
    }};

constexpr int64_t kHeadDim = 64;

std::vector<std::string> read_words(const std::string& text) {
  std::vector<std::string> words;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');) words.push_back(item);
  return words;
}

bool use_cpu_clock = false;

double now_ms() {
  if (use_cpu_clock) return 1e3 * double(std::clock()) / double(CLOCKS_PER_SEC);
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double best_ms(int repeats, const auto& body) {
  body();
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const double start = now_ms();
    body();
    best = std::min(best, now_ms() - start);
  }
  return best;
}

struct Times {
  double forward_ms, forward_backward_ms;
};

// The kernels as autograd's nodes call them (core/ops): `forward()` returns what the backward
// reads, and `backward(saved)` runs from one fixed upstream gradient. Through autograd, sum()'s
// gradient would add a reduction and a broadcast copy, and leaf inputs a copy of each of the
// three gradients into .grad, O(T) work of neither kernel (the attention of a model has no
// leaf inputs) that weighed on the sparse layouts' few milliseconds and not on dense ones.
Times time_attention(int repeats, const auto& forward, const auto& backward) {
  const double forward_ms = best_ms(repeats, [&] { forward(); });
  const double both_ms = best_ms(repeats, [&] { backward(forward()); });
  return {forward_ms, both_ms};
}

// Prints the summary the docs' table takes (docs/sparse_attention.md, "Measured"): one row per
// T, forward + backward time ratio over density for each mode.
void print_summary(const std::vector<int64_t>& lengths, const std::vector<std::string>& modes,
                   bool causal, const std::vector<std::vector<double>>& over_density) {
  fmt::print("\n| T, direction |");
  for (const std::string& mode : modes) fmt::print(" {} |", mode);
  fmt::print("\n|---|");
  for (size_t m = 0; m < modes.size(); ++m) fmt::print("---|");
  fmt::print("\n");
  for (size_t t = 0; t < lengths.size(); ++t) {
    fmt::print("| {}, {} |", lengths[t], causal ? "causal" : "bidir");
    for (double value : over_density[t]) fmt::print(" {:.2f} |", value);
    fmt::print("\n");
  }
}

void run(const std::vector<int64_t>& lengths, const std::vector<std::string>& modes, bool causal,
         int64_t heads, int repeats) {
  std::vector<std::vector<double>> over_density;  // [length][mode]
  fmt::print("{:>5} {:>13} {:>8} {:>10} {:>10} {:>7} {:>11} {:>11} {:>7} {:>13}\n", "T", "mode",
             "density", "fwd ms", "dense fwd", "ratio", "f+b ms", "dense f+b", "ratio",
             "ratio/density");
  for (int64_t length : lengths) {
    over_density.emplace_back();
    Generator generator(0);
    std::vector<Tensor> qkv;
    for (int i = 0; i < 3; ++i) {
      qkv.push_back(uniform({1, heads, length, kHeadDim}, -1.0, 1.0, {}, &generator));
    }
    const Tensor grad_out = uniform({1, heads, length, kHeadDim}, -1.0, 1.0, {}, &generator);
    const Times dense = time_attention(
        repeats,
        [&] {
          return ops::attention_forward(qkv[0], qkv[1], qkv[2], Tensor(), 0.0, causal, std::nullopt,
                                        nullptr);
        },
        [&](const ops::AttentionForward& saved) { ops::attention_backward(saved, grad_out); });
    for (const std::string& mode : modes) {
      SparsityConfig config;
      config.mode = parse_sparsity_mode(mode);
      config.unidirectional = causal;
      const ops::BlockSparseIndex index =
          ops::block_sparse_index(make_sparse_layout(config, heads, length), causal, Device::cpu());
      const double blocks = double(index.blocks);
      const double computed_by_dense = causal ? blocks * (blocks + 1) / 2 : blocks * blocks;
      const double density =
          double(index.active_blocks()) / double(index.layout_heads) / computed_by_dense;
      const Times sparse = time_attention(
          repeats,
          [&] {
            return ops::block_sparse_attention_forward(qkv[0], qkv[1], qkv[2], index, std::nullopt);
          },
          [&](const ops::BlockSparseForward& saved) {
            ops::block_sparse_attention_backward(saved, grad_out);
          });
      const double ratio = sparse.forward_backward_ms / dense.forward_backward_ms;
      over_density.back().push_back(ratio / density);
      fmt::print(
          "{:>5} {:>13} {:>8.3f} {:>10.2f} {:>10.2f} {:>7.3f} {:>11.2f} {:>11.2f} {:>7.3f} "
          "{:>13.2f}\n",
          length, mode, density, sparse.forward_ms, dense.forward_ms,
          sparse.forward_ms / dense.forward_ms, sparse.forward_backward_ms,
          dense.forward_backward_ms, ratio, ratio / density);
      std::fflush(stdout);
    }
  }
  print_summary(lengths, modes, causal, over_density);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lengths;
  std::vector<std::string> modes;
  bool causal = false;
  int64_t heads = 8;
  int repeats = 3;
  std::optional<int> status =
      apps::read_command_line(argc, argv, kSparseBenchCommandLine, [&](const apps::Flags& flags) {
        for (const std::string& word : read_words(flags.get_string("lengths"))) {
          const int64_t value = std::atoll(word.c_str());
          if (value < 16 || value % 16 != 0) {
            throw apps::FlagError(
                fmt::format("--lengths: expected multiples of the block (16), got '{}'", word));
          }
          lengths.push_back(value);
        }
        modes = read_words(flags.get_string("modes"));
        for (const std::string& mode : modes) {
          try {
            parse_sparsity_mode(mode);
          } catch (const std::invalid_argument& error) {
            throw apps::FlagError(fmt::format("--modes: {}", error.what()));
          }
        }
        const std::string attention = flags.get_string("attention");
        if (attention != "bidirectional" && attention != "unidirectional") {
          throw apps::FlagError(fmt::format(
              "--attention: expected bidirectional or unidirectional, got '{}'", attention));
        }
        causal = attention == "unidirectional";
        heads = flags.get_int("heads", 1);
        repeats = int(flags.get_int("repeats", 1));
        const std::string clock = flags.get_string("clock");
        if (clock != "wall" && clock != "cpu") {
          throw apps::FlagError(fmt::format("--clock: expected wall or cpu, got '{}'", clock));
        }
        use_cpu_clock = clock == "cpu";
      });
  if (status) return *status;
  fmt::print("block-sparse vs dense fused attention, B=1 H={} E={} f32 {}, {} threads, {} time\n",
             heads, kHeadDim, causal ? "causal" : "bidirectional", num_threads(),
             use_cpu_clock ? "CPU" : "wall");
  run(lengths, modes, causal, heads, repeats);
  return 0;
}
