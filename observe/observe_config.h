// The observability blocks of ds_config.json, as the engine uses them (read by
// dist/config_monitor_blocks.cpp with DeepSpeed's names and defaults): trace (ZeroTrain's own:
// Chrome trace files per rank), comms_logger, flops_profiler, csv_monitor, tensorboard and
// memory_breakdown.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zt::observe {

// trace {enabled, output_path, steps "A:B"}: one trace file per rank for training steps A..B
// (counted from 1, as the step log prints them).
struct TraceConfig {
  bool enabled = false;
  std::string output_path = "traces";
  int64_t first_step = 1, last_step = 1;
};

// comms_logger {enabled, verbose, prof_all, prof_ops, debug}.
struct CommsLoggerConfig {
  bool enabled = false;
  bool verbose = false;               // a line per collective as it finishes
  bool prof_all = true;               // every kind; else only those in prof_ops
  std::vector<std::string> prof_ops;  // "all_reduce", "all_gather", ...
  bool debug = false;                 // records by engine phase too (forward/backward/step)
};

// flops_profiler {enabled, recompute_fwd_factor, profile_step, module_depth, top_modules,
// detailed, output_file}.
struct FlopsProfilerConfig {
  bool enabled = false;
  double recompute_fwd_factor = 0.0;
  int64_t profile_step = 1;
  int64_t module_depth = -1;  // -1: every depth
  int64_t top_modules = 1;
  bool detailed = true;
  std::string output_file;  // empty: standard output
};

// csv_monitor and tensorboard {enabled, output_path, job_name}.
struct MonitorConfig {
  bool enabled = false;
  std::string output_path;
  std::string job_name = "DeepSpeedJobName";
};

struct ObserveConfig {
  TraceConfig trace;
  CommsLoggerConfig comms_logger;
  FlopsProfilerConfig flops_profiler;
  MonitorConfig csv_monitor;
  MonitorConfig tensorboard;
  bool memory_breakdown = false;
};

}  // namespace zt::observe
