// Speed of the host's fused Adam/AdamW (core/host_optimizer_kernels.h) against the memory
// bandwidth of the same machine measured in the same run. The update reads p, g, m, v and writes
// p, m, v: 28 bytes per parameter; the 16-bit form (the offload engine's: a bf16 gradient read in
// place of the f32 one, the updated parameter's bf16 copy written) moves 28 too. The copy is the
// best of memcpy and a non-temporal copy over the same threads and the same chunks, on a working
// set as large as the update's. The rows alternate round by round, so a change in machine load hits
// them alike. Prints one line per (threads, case): "threads case ms Mparams/s GB/s %copy %traffic",
// the last two the rate against the best copy's and against the same-traffic loop's.
#include <fmt/format.h>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "apps/read_command_line.h"
#include "bench/timing.h"
#include "core/allocator.h"
#include "core/cpu/optimizer_paths.h"
#include "core/half.h"
#include "core/host_optimizer_kernels.h"
#include "core/parallel.h"
#include "optim/update_rules.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

using zt::bench::median;
using zt::bench::seconds_of;

const zt::apps::CommandLine kHostAdamCommandLine{
    "bench/host_adam",
    "Times the host's fused AdamW over f32 buffers (and its 16-bit gradient / parameter form)\n"
    "against a copy of the same working set over the same threads, in one run.",
    {
        {"params", "N", "50000000", "parameters updated per step"},
        {"threads", "T,T..", "1,2", "thread counts, comma-separated"},
        {"rounds", "R", "15", "timed rounds per case (the median is printed)"},
    }};

constexpr int64_t kCopyGrain = int64_t(1) << 16;  // floats per chunk of the copy

// A buffer of `count` T from the host allocator that the engine's offloaded optimizer state
// comes from (so with its pages: huge pages for large blocks), its pages first touched by the
// threads that will use them (the same static schedule as the update's). The copies use the
// same buffers, so every case runs on the same kind of memory.
template <typename T>
struct AlignedBuffer {
  T* data = nullptr;
  size_t bytes = 0;
  explicit AlignedBuffer(int64_t count, T fill) : bytes(size_t(count) * sizeof(T)) {
    data = static_cast<T*>(zt::cpu_allocator().allocate(bytes, zt::MemoryTag::optim_state_offload));
    zt::parallel_for(0, count, kCopyGrain, [&](int64_t begin, int64_t end) {
      std::fill(data + begin, data + end, fill);
    });
  }
  ~AlignedBuffer() {
    zt::cpu_allocator().deallocate(data, bytes, zt::MemoryTag::optim_state_offload);
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

void memcpy_copy(const float* source, float* target, int64_t count) {
  zt::parallel_for(0, count, kCopyGrain, [&](int64_t begin, int64_t end) {
    std::memcpy(target + begin, source + begin, size_t(end - begin) * sizeof(float));
  });
}

#if defined(__x86_64__)
// Non-temporal stores: the target's lines are written without being read first.
__attribute__((target("avx512f"))) void streaming_copy_range(const float* source, float* target,
                                                             int64_t begin, int64_t end) {
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) _mm512_stream_ps(target + i, _mm512_load_ps(source + i));
  for (; i < end; ++i) target[i] = source[i];
}

// The update's memory traffic with an add in place of Adam's arithmetic: read p, g, m, v, write
// p, m, v. What the update would take if its arithmetic were free.
__attribute__((target("avx512f"))) void traffic_range(const zt::cpu::AdamRange& r, int64_t begin,
                                                      int64_t end) {
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) {
    // The update's prefetches (core/cpu/optimizer_paths.h), so that this stays its upper bound.
    for (const float* operand :
         {(const float*)r.params, r.grads, (const float*)r.exp_avg, (const float*)r.exp_avg_sq})
      __builtin_prefetch(operand + i + 384);
    __m512 grad = _mm512_loadu_ps(r.grads + i);
    _mm512_storeu_ps(r.params + i, _mm512_add_ps(_mm512_loadu_ps(r.params + i), grad));
    _mm512_storeu_ps(r.exp_avg + i, _mm512_add_ps(_mm512_loadu_ps(r.exp_avg + i), grad));
    _mm512_storeu_ps(r.exp_avg_sq + i, _mm512_add_ps(_mm512_loadu_ps(r.exp_avg_sq + i), grad));
  }
  for (; i < end; ++i) {
    r.params[i] += r.grads[i];
    r.exp_avg[i] += r.grads[i];
    r.exp_avg_sq[i] += r.grads[i];
  }
}
#endif

void streaming_copy(const float* source, float* target, int64_t count) {
#if defined(__x86_64__)
  zt::parallel_for(0, count, kCopyGrain, [&](int64_t begin, int64_t end) {
    streaming_copy_range(source, target, begin, end);
  });
  _mm_sfence();
#endif
}

void same_traffic(const zt::cpu::AdamRange& r) {
#if defined(__x86_64__)
  zt::parallel_for(0, r.count, kCopyGrain,
                   [&](int64_t begin, int64_t end) { traffic_range(r, begin, end); });
#endif
}

enum class Kind { copy, traffic, update };

struct Case {
  std::string name;
  Kind kind;
  double bytes_per_round;
  int64_t params_per_round;  // 0 for the copies
  std::function<void()> run;
};

// The median seconds of each case over `rounds` rounds after two untimed ones; the cases take
// turns within a round.
std::vector<double> time_cases(const std::vector<Case>& cases, int64_t rounds) {
  std::vector<std::vector<double>> times(cases.size());
  for (int warmup = 0; warmup < 2; ++warmup)
    for (const Case& c : cases) c.run();
  for (int64_t round = 0; round < rounds; ++round)
    for (size_t c = 0; c < cases.size(); ++c) times[c].push_back(seconds_of(cases[c].run));
  std::vector<double> medians;
  for (const std::vector<double>& case_times : times) medians.push_back(median(case_times));
  return medians;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t params = 0, rounds = 0;
  std::vector<int> thread_counts;
  std::optional<int> status = zt::apps::read_command_line(
      argc, argv, kHostAdamCommandLine, [&](const zt::apps::Flags& flags) {
        params = flags.get_int("params", 1);
        rounds = flags.get_int("rounds", 1);
        std::string list = flags.get_string("threads");
        for (size_t at = 0; at <= list.size();) {
          size_t comma = std::min(list.find(',', at), list.size());
          int threads = std::atoi(list.substr(at, comma - at).c_str());
          if (threads < 1)
            throw std::invalid_argument("--threads: expected positive integers, got '" + list +
                                        "'");
          thread_counts.push_back(threads);
          at = comma + 1;
        }
      });
  if (status) return *status;

  // AdamW with DeepSpeed's and PyTorch's defaults and a weight decay, at a step past the first.
  const zt::AdamStepConstants k =
      zt::optim::adam_step_constants({.lr = 1e-3, .weight_decay = 0.01, .step = 10});
  AlignedBuffer<float> p(params, 0.5f), g(params, 0.01f), m(params, 0.001f), v(params, 1e-4f);
  // The copy's working set equals the update's (4 f32 arrays): 2N floats copied to 2N others.
  AlignedBuffer<float> copy_source(2 * params, 1.0f), copy_target(2 * params, 0.0f);
  AlignedBuffer<uint16_t> g16(params, zt::bf16(0.01f).bits), p16(params, 0);
  const zt::cpu::AdamRange range{p.data, g.data, m.data, v.data, params};
  const zt::cpu::AdamRange range16{p.data, nullptr,  m.data,   v.data,
                                   params, g16.data, p16.data, zt::DType::bf16};

  const double copy_bytes = 2.0 * double(2 * params) * sizeof(float);
  std::vector<Case> cases{
      {"copy_memcpy", Kind::copy, copy_bytes, 0,
       [&] { memcpy_copy(copy_source.data, copy_target.data, 2 * params); }},
      {"copy_streaming", Kind::copy, copy_bytes, 0,
       [&] { streaming_copy(copy_source.data, copy_target.data, 2 * params); }},
      {"same_traffic", Kind::traffic, 28.0 * double(params), 0, [&] { same_traffic(range); }},
      {"adamw_f32", Kind::update, 28.0 * double(params), params,
       [&] {
         zt::cpu::adam_update_ranges({&range, 1}, k);
       }},
      {"adamw_bf16_grad_param", Kind::update, 28.0 * double(params), params,
       [&] {
         zt::cpu::adam_update_ranges({&range16, 1}, k);
       }},
  };
  // The streaming copy and the same-traffic loop are written in AVX-512, as the update runs on
  // such a machine; elsewhere memcpy alone measures the bandwidth.
  if (!zt::cpu::has_avx512())
    std::erase_if(cases,
                  [](const Case& c) { return c.name != "copy_memcpy" && c.kind != Kind::update; });

  fmt::print("host_adam: {} parameters, {} timed rounds (median), {} cores online\n", params,
             rounds, std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  fmt::print("{:>7} {:<22} {:>9} {:>10} {:>8} {:>7} {:>9}\n", "threads", "case", "ms", "Mparams/s",
             "GB/s", "%copy", "%traffic");
  for (int threads : thread_counts) {
    zt::set_num_threads(threads);
    std::vector<double> seconds = time_cases(cases, rounds);
    double copy_rate = 0, traffic_rate = 0;
    for (size_t c = 0; c < cases.size(); ++c) {
      double rate = cases[c].bytes_per_round / seconds[c];
      if (cases[c].kind == Kind::copy) copy_rate = std::max(copy_rate, rate);
      if (cases[c].kind == Kind::traffic) traffic_rate = rate;
    }
    for (size_t c = 0; c < cases.size(); ++c) {
      double rate = cases[c].bytes_per_round / seconds[c];
      std::string params_rate =
          cases[c].params_per_round == 0
              ? "-"
              : fmt::format("{:.0f}", double(cases[c].params_per_round) / seconds[c] / 1e6);
      std::string of_traffic =
          traffic_rate > 0 ? fmt::format("{:.1f}%", 100.0 * rate / traffic_rate) : "-";
      fmt::print("{:>7} {:<22} {:>9.2f} {:>10} {:>8.2f} {:>6.1f}% {:>9}\n", threads, cases[c].name,
                 seconds[c] * 1e3, params_rate, rate / 1e9, 100.0 * rate / copy_rate, of_traffic);
    }
  }
  return 0;
}
