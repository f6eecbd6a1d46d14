// The fused scaled_dot_product_attention on the CPU: forward and forward + backward times at
// T = 256, 1024, 4096 (B=1, H=6, E=64, causal, f32; best of repeated runs after a warm-up)
// at each thread count, and the allocator's peak of one forward + backward at T = 1024, 2048,
// 4096 beside the composed reference's (which holds the [H, T, T] weights). --torch FILE adds
// PyTorch's times (lines "T threads forward_ms forward_backward_ms", as printed by the optional
// bench/attention_pytorch.py) and our speed ratio against them. Flags: `bench/attention --help`.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include "apps/read_command_line.h"
#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/parallel.h"

namespace {

using namespace zt;

const apps::CommandLine kAttentionBenchCommandLine{
    "bench/attention",
    "Time and memory of the fused scaled_dot_product_attention (B=1, H=6, E=64, causal, f32):\n"
    "forward and forward + backward per T and thread count, and the allocator's peak of one\n"
    "forward + backward against the composed reference's.",
    {
        {"lengths", "LIST", "256,1024,4096", "sequence lengths T to time, comma-separated"},
        {"memory-lengths", "LIST", "1024,2048,4096", "lengths whose memory peak is measured"},
        {"threads", "LIST", "1,2", "thread counts to time, comma-separated"},
        {"repeats", "R", "5", "timed runs per case at T >= 4096 (4x that below); the best counts"},
        {"clock", "KIND", "wall", "wall, or cpu: the process's CPU time (for a loaded machine)"},
        {"torch", "FILE", "", "PyTorch's times (from bench/attention_pytorch.py) to compare with",
         "none"},
    }};

constexpr int64_t kHeads = 6, kHeadDim = 64;
// The composed reference holds several [H, T, T] tensors; past this length it would need
// gigabytes, so its peak is only measured up to here.
constexpr int64_t kLongestComposed = 2048;

std::vector<int64_t> read_list(const apps::Flags& flags, const char* name) {
  std::vector<int64_t> values;
  std::stringstream stream(flags.get_string(name));
  for (std::string item; std::getline(stream, item, ',');) {
    const int64_t value = std::atoll(item.c_str());
    if (value < 1) {
      throw apps::FlagError(fmt::format("--{}: expected positive integers, got '{}'", name, item));
    }
    values.push_back(value);
  }
  return values;
}

struct TorchTimes {
  double forward_ms, forward_backward_ms;
};

std::map<std::pair<int64_t, int64_t>, TorchTimes> read_torch_times(const std::string& path) {
  std::map<std::pair<int64_t, int64_t>, TorchTimes> times;
  if (path.empty()) return times;
  std::ifstream file(path);
  if (!file) throw std::runtime_error(fmt::format("--torch: cannot open {}", path));
  for (std::string line; std::getline(file, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    int64_t length = 0, threads = 0;
    TorchTimes entry{};
    if (!(fields >> length >> threads >> entry.forward_ms >> entry.forward_backward_ms)) {
      throw std::runtime_error(fmt::format(
          "--torch {}: expected lines 'T threads forward_ms forward_backward_ms', got '{}'", path,
          line));
    }
    times[{length, threads}] = entry;
  }
  return times;
}

std::vector<Tensor> inputs(int64_t length) {
  Generator generator(0);
  std::vector<Tensor> qkv;
  for (int i = 0; i < 3; ++i) {
    qkv.push_back(uniform({1, kHeads, length, kHeadDim}, 0.0, 1.0, {}, &generator));
    qkv.back().set_requires_grad(true);
  }
  return qkv;
}

bool use_cpu_clock = false;

// Milliseconds on the chosen clock: wall time, or the CPU time of every thread of the process,
// which other programs on a shared machine do not inflate.
double now_ms() {
  if (use_cpu_clock) return 1e3 * double(std::clock()) / double(CLOCKS_PER_SEC);
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The best of `repeats` timed runs after one warm-up: other programs' load only ever adds time.
double best_ms(int repeats, const auto& body) {
  body();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const double start = now_ms();
    body();
    times.push_back(now_ms() - start);
  }
  return *std::min_element(times.begin(), times.end());
}

void forward_backward(const std::vector<Tensor>& qkv, bool fused) {
  auto op = fused ? scaled_dot_product_attention : scaled_dot_product_attention_math;
  Tensor out = op(qkv[0], qkv[1], qkv[2], Tensor(), 0.0, true, std::nullopt, nullptr);
  sum(out).backward();
  for (const Tensor& x : qkv) x.set_grad(Tensor());
}

void print_times(const std::vector<int64_t>& lengths, const std::vector<int64_t>& thread_counts,
                 int repeats, const std::string& torch_file) {
  const auto torch = read_torch_times(torch_file);
  fmt::print("{:>5} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "T", "threads", "fwd ms",
             "torch fwd", "speed", "fwd+bwd ms", "torch", "speed");
  for (int64_t threads : thread_counts) {
    set_num_threads(int(threads));
    for (int64_t length : lengths) {
      const std::vector<Tensor> qkv = inputs(length);
      const int runs = length >= 4096 ? repeats : 4 * repeats;
      const double forward = best_ms(runs, [&] {
        NoGradGuard no_grad;
        scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], Tensor(), 0.0, true);
      });
      const double both = best_ms(runs, [&] { forward_backward(qkv, true); });
      fmt::print("{:>5} {:>7} {:>10.3f}", length, threads, forward);
      const auto theirs = torch.find({length, threads});
      auto column = [&](double ours, double reference) {
        fmt::print(" {:>10.3f} {:>9.2f}x", reference, reference / ours);
      };
      if (theirs != torch.end())
        column(forward, theirs->second.forward_ms);
      else
        fmt::print(" {:>10} {:>10}", "-", "-");
      fmt::print(" {:>10.3f}", both);
      if (theirs != torch.end()) column(both, theirs->second.forward_backward_ms);
      fmt::print("\n");
    }
  }
  fmt::print("(speed: PyTorch's time / ours, above 1 when ours is faster)\n\n");
}

int64_t peak_bytes(int64_t length, bool fused) {
  MemoryAccounting& accounting = cpu_allocator().accounting();
  const std::vector<Tensor> qkv = inputs(length);
  const int64_t live_before = accounting.stats().total_live_bytes;
  accounting.reset_peak();
  forward_backward(qkv, fused);
  return accounting.stats().total_peak_bytes - live_before;
}

void print_memory(const std::vector<int64_t>& lengths) {
  fmt::print("{:>5} {:>16} {:>8} {:>18} {:>8}\n", "T", "fused peak MiB", "growth",
             "composed peak MiB", "growth");
  int64_t previous_fused = 0, previous_composed = 0;
  for (int64_t length : lengths) {
    const int64_t fused = peak_bytes(length, true);
    const int64_t composed = length <= kLongestComposed ? peak_bytes(length, false) : 0;
    auto growth = [](int64_t now, int64_t before) {
      return now > 0 && before > 0 ? fmt::format("{:.2f}x", double(now) / double(before))
                                   : std::string("-");
    };
    fmt::print("{:>5} {:>16.2f} {:>8} {:>18} {:>8}\n", length, double(fused) / 1048576.0,
               growth(fused, previous_fused),
               composed > 0 ? fmt::format("{:.2f}", double(composed) / 1048576.0) : "-",
               growth(composed, previous_composed));
    previous_fused = fused;
    previous_composed = composed;
  }
  fmt::print("(peak of one forward + backward above the inputs, by the allocator's accounting)\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lengths, memory_lengths, thread_counts;
  int repeats = 5;
  std::string torch_file;
  std::optional<int> status = apps::read_command_line(
      argc, argv, kAttentionBenchCommandLine, [&](const apps::Flags& flags) {
        lengths = read_list(flags, "lengths");
        memory_lengths = read_list(flags, "memory-lengths");
        thread_counts = read_list(flags, "threads");
        repeats = int(flags.get_int("repeats", 1));
        torch_file = flags.get_string("torch");
        const std::string clock = flags.get_string("clock");
        if (clock != "wall" && clock != "cpu") {
          throw apps::FlagError(fmt::format("--clock: expected wall or cpu, got '{}'", clock));
        }
        use_cpu_clock = clock == "cpu";
      });
  if (status) return *status;
  fmt::print("scaled_dot_product_attention, B=1 H={} E={} causal f32, {} time\n", kHeads, kHeadDim,
             use_cpu_clock ? "CPU" : "wall");
  print_times(lengths, thread_counts, repeats, torch_file);
  print_memory(memory_lengths);
  return 0;
}
