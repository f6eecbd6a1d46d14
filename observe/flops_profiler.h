// FlopsProfiler: DeepSpeed's flops profiler for one training step. While started, it measures
// each module's forward calls: their latency and the MACs and FLOPs of their matrix products and
// convolutions (observe/module_flops.h); a module's figures include its children's, as
// DeepSpeed aggregates them. report() prints DeepSpeed's layout: the summary (params, MACs,
// FLOPs, latencies, FLOP/s), the top modules per depth, and the module tree (detailed).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "observe/module_flops.h"
#include "observe/observe_config.h"

namespace zt::observe {

// The measured phases of the profiled step (seconds) and the run's sizes, for the summary.
struct ProfiledStep {
  int64_t step = 0;
  int world_size = 1;
  int64_t batch_size_per_gpu = 0;
  double forward_seconds = 0, backward_seconds = 0, step_seconds = 0;
};

class FlopsProfiler {
 public:
  // Registers its hooks on every module of `model`, which must outlive this.
  FlopsProfiler(FlopsProfilerConfig config, nn::Module& model);
  ~FlopsProfiler();
  FlopsProfiler(const FlopsProfiler&) = delete;
  FlopsProfiler& operator=(const FlopsProfiler&) = delete;

  void start();  // clears what an earlier profile measured
  void stop();
  bool profiling() const { return profiling_; }

  struct ModuleProfile {
    std::string name;  // "" for the model
    std::string type;
    int depth = 0;  // 0: the model, 1: its children, ...
    int64_t params = 0;
    int64_t macs = 0, flops = 0;  // with its children's
    double latency_seconds = 0;   // its forward calls, summed
    int64_t calls = 0;
  };
  // Every module in the model's order, aggregated over its children.
  std::vector<ModuleProfile> profiles() const;
  // The model's totals.
  ModuleProfile totals() const { return profiles().front(); }

  std::string report(const ProfiledStep& measured) const;

 private:
  struct Measured {
    nn::Module* module;
    std::string name, type;
    int64_t own_macs = 0, own_flops = 0;
    double latency_seconds = 0;
    int64_t calls = 0;
    std::vector<double> starts;
    std::vector<int64_t> hook_handles;
  };
  std::string summary(const ProfiledStep& measured, const ModuleProfile& model) const;
  std::string top_modules(const std::vector<ModuleProfile>& profiles) const;
  std::string tree(const std::vector<ModuleProfile>& profiles) const;

  FlopsProfilerConfig config_;
  nn::Module& model_;
  std::vector<std::unique_ptr<Measured>> measured_;
  bool profiling_ = false;
};

// "1.23 M", "4.56 G": DeepSpeed's number_to_string with unit prefixes.
std::string with_unit_prefix(double value, const std::string& unit = "");

}  // namespace zt::observe
