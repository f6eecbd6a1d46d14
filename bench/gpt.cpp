// Training throughput of the GPT-2 model (models::GPT) on the CPU: tokens/s of a step of
// forward, cross entropy over the byte vocabulary, backward and AdamW, at 1 and 2 threads; the
// median of --steps timed steps after --warmup untimed ones, as bench/gpt_pytorch.py
// times the same model in PyTorch. --torch FILE adds PyTorch's figures (lines
// "threads tokens_per_s") and our ratio; bench/gpt.sh runs both. Flags: `bench/gpt --help`.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/cli_flags.h"
#include "apps/read_command_line.h"
#include "autograd/functions.h"
#include "bench/timing.h"
#include "core/cpu/openblas_core_type.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/parallel.h"
#include "models/gpt.h"
#include "optim/adam.h"

using namespace zt;

namespace {

using zt::bench::median;

struct BenchOptions {
  models::GPTConfig config;
  int64_t batch = 8, steps = 10, warmup = 2;
  std::vector<int> threads;
  std::string torch_file;
  bool phases = false;
};

const apps::CommandLine kGptBenchCommandLine{
    "bench/gpt",
    "Training throughput (tokens/s) of the GPT-2 model on the CPU: forward, cross entropy over\n"
    "the byte vocabulary, backward and AdamW step; the median of --steps timed steps.",
    {
        {"n-layer", "N", "6", "transformer blocks"},
        {"n-head", "N", "6", "attention heads"},
        {"n-embd", "N", "384", "model width"},
        {"block-size", "T", "256", "tokens per window"},
        {"batch", "B", "8", "windows per step"},
        {"steps", "N", "10", "timed steps; the median counts"},
        {"warmup", "N", "2", "untimed steps first"},
        {"threads", "LIST", "1,2", "thread counts to time, comma-separated"},
        {"phases", "", "", "also print the median milliseconds of forward, backward and AdamW"},
        {"torch", "FILE", "", "PyTorch's figures (lines \"threads tokens_per_s\") to compare with",
         "none"},
    }};

std::vector<int> read_thread_counts(const std::string& text) {
  std::vector<int> counts;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');) {
    if (item.empty()) continue;
    int threads = std::atoi(item.c_str());
    if (threads < 1)
      throw apps::FlagError(fmt::format("--threads: expected counts >= 1, got '{}'", item));
    counts.push_back(threads);
  }
  if (counts.empty()) throw apps::FlagError("--threads: expected at least one count");
  return counts;
}

BenchOptions read_options(const apps::Flags& flags) {
  BenchOptions options;
  options.config.n_layer = flags.get_int("n-layer", 1);
  options.config.n_head = flags.get_int("n-head", 1);
  options.config.n_embd = flags.get_int("n-embd", 1);
  options.config.block_size = flags.get_int("block-size", 1);
  options.batch = flags.get_int("batch", 1);
  options.steps = flags.get_int("steps", 1);
  options.warmup = flags.get_int("warmup", 0);
  options.threads = read_thread_counts(flags.get_string("threads"));
  options.torch_file = flags.get_string("torch");
  options.phases = flags.has("phases");
  try {
    options.config.validate();
  } catch (const std::invalid_argument& error) {
    throw apps::FlagError(error.what());
  }
  return options;
}

// PyTorch's tokens/s keyed by threads, from lines "threads tokens_per_s"; '#' starts a comment.
std::map<int, double> read_torch_results(const std::string& path) {
  std::map<int, double> results;
  if (path.empty()) return results;
  std::ifstream file(path);
  if (!file) throw std::runtime_error(fmt::format("--torch: cannot open {}", path));
  for (std::string line; std::getline(file, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    int threads = 0;
    double tokens_per_second = 0;
    if (fields >> threads >> tokens_per_second) results[threads] = tokens_per_second;
  }
  return results;
}

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double>(end - start).count();
}

struct StepTimes {
  double step, forward, backward, optimizer;  // medians in seconds
};

// The medians over the timed steps; the targets are the inputs (a stand-in for the next
// tokens, as the PyTorch side does), drawn once.
StepTimes time_training_steps(const BenchOptions& options, int threads) {
  set_num_threads(threads);
  manual_seed(1234);
  auto model = std::make_shared<models::GPT>(options.config);
  model->train();
  optim::Adam optimizer(optim::single_group(model->parameters(), 1e-4, 0.01));
  const int64_t batch = options.batch, block = options.config.block_size;
  Tensor tokens = mul(rand({batch, block}), double(options.config.vocab_size)).to(DType::i64);
  Tensor targets = tokens.reshape({batch * block});
  std::vector<double> steps, forwards, backwards, updates;
  for (int64_t step = 0; step < options.warmup + options.steps; ++step) {
    Clock::time_point begin = Clock::now();
    Tensor logits = (*model)(tokens);
    Tensor loss =
        cross_entropy(logits.reshape({batch * block, options.config.vocab_size}), targets);
    Clock::time_point forward_done = Clock::now();
    optimizer.zero_grad();
    loss.backward();
    Clock::time_point backward_done = Clock::now();
    optimizer.step();
    Clock::time_point end = Clock::now();
    if (step < options.warmup) continue;
    steps.push_back(seconds_between(begin, end));
    forwards.push_back(seconds_between(begin, forward_done));
    backwards.push_back(seconds_between(forward_done, backward_done));
    updates.push_back(seconds_between(backward_done, end));
  }
  return {median(steps), median(forwards), median(backwards), median(updates)};
}

int run(const BenchOptions& options) {
  auto torch_results = read_torch_results(options.torch_file);
  const models::GPTConfig& config = options.config;
  fmt::print(
      "GPT-2 {} layers, {} heads, width {}, T {}, batch {}, vocabulary {}, tied head; AdamW; "
      "median of {} steps\n",
      config.n_layer, config.n_head, config.n_embd, config.block_size, options.batch,
      config.vocab_size, options.steps);
  cpu::ensure_openblas_kernels();
  fmt::print("OpenBLAS kernels: {}\n", cpu::openblas_core_name());
  fmt::print("{:>8} {:>14} {:>10}", "threads", "tokens/s", "ms/step");
  if (options.phases) fmt::print(" {:>10} {:>10} {:>10}", "forward", "backward", "adamw");
  if (!torch_results.empty()) fmt::print(" {:>16} {:>11}", "pytorch tokens/s", "ours/torch");
  fmt::print("\n");
  for (int threads : options.threads) {
    StepTimes times = time_training_steps(options, threads);
    double tokens_per_second = double(options.batch * config.block_size) / times.step;
    fmt::print("{:>8} {:>14.0f} {:>10.1f}", threads, tokens_per_second, times.step * 1e3);
    if (options.phases) {
      fmt::print(" {:>10.1f} {:>10.1f} {:>10.1f}", times.forward * 1e3, times.backward * 1e3,
                 times.optimizer * 1e3);
    }
    auto torch = torch_results.find(threads);
    if (torch != torch_results.end()) {
      fmt::print(" {:>16.0f} {:>11.2f}", torch->second, tokens_per_second / torch->second);
    }
    fmt::print("\n");
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions options;
  std::optional<int> status =
      apps::read_command_line(argc, argv, kGptBenchCommandLine,
                              [&](const apps::Flags& flags) { options = read_options(flags); });
  if (status) return *status;
  try {
    return run(options);
  } catch (const std::exception& error) {
    fmt::print(stderr, "bench/gpt: {}\n", error.what());
    return 1;
  }
}
