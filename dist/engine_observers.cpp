// The engine's observers: which the config builds, and what each does at the engine's phases.
#include "dist/engine_observers.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>

#include "observe/csv_monitor.h"
#include "observe/tensorboard_monitor.h"
#include "observe/trace_recorder.h"

namespace zt::dist {

namespace {

// A file can be made in `folder` (made first if missing): what each output is checked for when
// the engine is built, on every rank together, so that a bad path fails there and not one rank
// alone in the middle of training.
void check_writable_folder(const std::string& key, const std::filesystem::path& folder) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!folder.empty()) fs::create_directories(folder, error);
  fs::path probe = (folder.empty() ? fs::path(".") : folder) / ".zerotrain_write_probe";
  std::ofstream file(probe, std::ios::binary | std::ios::trunc);
  if (error || !file.good())
    throw std::runtime_error(fmt::format("{}: cannot write in the folder {} ({})", key,
                                         folder.empty() ? "." : folder.string(),
                                         error ? error.message() : std::strerror(errno)));
  file.close();
  fs::remove(probe, error);
}

// An output written during training: a failure (a full disk) is reported, and training goes on.
void report_failed_write(const std::function<void()>& write) {
  try {
    write();
  } catch (const std::exception& error) {
    fmt::print(stderr, "warning: {}\n", error.what());
  }
}

}  // namespace

EngineObservers::EngineObservers(const Config& config, comm::Communicator& data_parallel,
                                 nn::Module& model)
    : config_(config), data_parallel_(data_parallel), model_(model) {
  const observe::ObserveConfig& observe = config.observe;
  if (observe.comms_logger.enabled)
    comms_logger_ =
        std::make_unique<observe::CommsLogger>(observe.comms_logger, data_parallel.rank());
  if (observe.trace.enabled) {
    check_writable_folder("trace.output_path", observe.trace.output_path);
    observe::TraceRecorder::instance().configure({.output_dir = observe.trace.output_path,
                                                  .first_step = observe.trace.first_step,
                                                  .last_step = observe.trace.last_step,
                                                  .rank = data_parallel.rank(),
                                                  .world_size = data_parallel.size()});
  }
  if (observe.csv_monitor.enabled && data_parallel.rank() == 0)
    monitors_.push_back(std::make_unique<observe::CsvMonitor>(observe.csv_monitor));
  if (observe.tensorboard.enabled && data_parallel.rank() == 0)
    monitors_.push_back(std::make_unique<observe::TensorboardMonitor>(observe.tensorboard));
  const std::string& flops_file = observe.flops_profiler.output_file;
  if (observe.flops_profiler.enabled && !flops_file.empty() && data_parallel.rank() == 0)
    check_writable_folder("flops_profiler.output_file",
                          std::filesystem::path(flops_file).parent_path());
  if (observe.trace.enabled) module_tracer_ = std::make_unique<observe::ModuleTracer>(model);
  if (observe.trace.enabled || comms_logger_)
    observed_ = std::make_unique<observe::ObservedCommunicator>(data_parallel, comms_logger_.get());
}

EngineObservers::~EngineObservers() {
  try {
    for (auto& monitor : monitors_) monitor->flush();
  } catch (const std::exception& error) {
    fmt::print(stderr, "{}\n", error.what());
  }
  if (!config_.observe.trace.enabled) return;
  observe::TraceRecorder& recorder = observe::TraceRecorder::instance();
  try {
    recorder.flush();
  } catch (const std::exception& error) {
    fmt::print(stderr, "trace: {}\n", error.what());
  }
  recorder.reset();
}

void EngineObservers::watch_model() {
  if (module_tracer_) module_tracer_->register_pre_hooks();
  if (config_.observe.flops_profiler.enabled)
    flops_profiler_ =
        std::make_unique<observe::FlopsProfiler>(config_.observe.flops_profiler, model_);
}

void EngineObservers::end_phase() {
  if (phase_.empty()) return;
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - phase_start_).count();
  if (phase_ == "forward") forward_seconds_ += seconds;
  if (phase_ == "backward") backward_seconds_ += seconds;
  if (phase_ == "step") step_seconds_ += seconds;
  phase_.clear();
}

void EngineObservers::begin_phase(std::string_view phase, int64_t step) {
  end_phase();
  phase_ = phase;
  phase_start_ = std::chrono::steady_clock::now();
  // DeepSpeed profiles the step that starts when profile_step steps are done.
  if (flops_profiler_ && phase == "forward" &&
      step - 1 == config_.observe.flops_profiler.profile_step && !flops_profiler_->profiling())
    flops_profiler_->start();
  if (comms_logger_) comms_logger_->set_phase(phase);
  if (config_.observe.trace.enabled) observe::TraceRecorder::instance().begin_step(step);
}

void EngineObservers::end_autograd_backward() {
  if (module_tracer_) module_tracer_->end_backward();
}

void EngineObservers::end_step(const StepRecord& record) {
  const int64_t step = record.step;
  end_phase();
  if (flops_profiler_ && flops_profiler_->profiling())
    report_failed_write([&] { print_flops_profile(step); });
  if (!monitors_.empty()) report_failed_write([&] { write_monitor_events(record); });
  forward_seconds_ = backward_seconds_ = step_seconds_ = 0;
  if (comms_logger_) comms_logger_->set_phase("other");
  if (!config_.observe.trace.enabled) return;
  std::string path;
  report_failed_write([&] { path = observe::TraceRecorder::instance().end_step(step); });
  if (!path.empty() && data_parallel_.rank() == 0) {
    fmt::print("trace: steps {}..{} written to {} (one file per rank, {} ranks)\n",
               config_.observe.trace.first_step, config_.observe.trace.last_step, path,
               data_parallel_.size());
    std::fflush(stdout);
  }
}

void EngineObservers::log(int64_t step, const MemoryStats& memory) {
  if (data_parallel_.rank() != 0) return;
  if (comms_logger_) fmt::print("comms_logger at step {}:\n{}", step, comms_logger_->summary());
  if (config_.observe.memory_breakdown)
    fmt::print("memory at step {}: {}\n", step, memory_breakdown_line(memory));
  std::fflush(stdout);
}

void EngineObservers::write_event(const std::string& name, double value, int64_t x) {
  for (auto& monitor : monitors_) monitor->write_event(name, value, x);
}

// DeepSpeed's engine events, x = global samples; the times with wall_clock_breakdown. Written
// out at each step log (and when the engine goes).
void EngineObservers::write_monitor_events(const StepRecord& record) {
  int64_t x = record.global_samples;
  for (auto& monitor : monitors_) {
    monitor->write_event("Train/Samples/train_loss", record.loss, x);
    monitor->write_event("Train/Samples/lr", record.lr, x);
    if (record.loss_scale > 0)
      monitor->write_event("Train/Samples/loss_scale", record.loss_scale, x);
    if (config_.wall_clock_breakdown) {
      monitor->write_event("Train/Samples/elapsed_time_ms_forward", 1e3 * forward_seconds_, x);
      monitor->write_event("Train/Samples/elapsed_time_ms_backward", 1e3 * backward_seconds_, x);
      monitor->write_event("Train/Samples/elapsed_time_ms_step", 1e3 * step_seconds_, x);
    }
    if (config_.steps_per_print > 0 && record.step % config_.steps_per_print == 0) monitor->flush();
  }
}

void EngineObservers::print_flops_profile(int64_t step) {
  flops_profiler_->stop();
  flops_report_ =
      flops_profiler_->report({.step = step,
                               .world_size = data_parallel_.size(),
                               .batch_size_per_gpu = config_.train_micro_batch_size_per_gpu,
                               .forward_seconds = forward_seconds_,
                               .backward_seconds = backward_seconds_,
                               .step_seconds = step_seconds_});
  if (data_parallel_.rank() != 0) return;
  const std::string& path = config_.observe.flops_profiler.output_file;
  if (path.empty()) {
    fmt::print("{}", flops_report_);
    std::fflush(stdout);
    return;
  }
  namespace fs = std::filesystem;
  fs::path temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    file << flops_report_;
    if (!file.flush())
      throw std::runtime_error(
          fmt::format("flops_profiler.output_file: cannot write {}", temporary.string()));
  }
  fs::rename(temporary, path);
}

std::string memory_breakdown_line(const MemoryStats& memory) {
  constexpr double kMegabyte = 1024.0 * 1024.0;
  return fmt::format("MA {:.2f} MB Max_MA {:.2f} MB | {}", memory.device_live_bytes / kMegabyte,
                     memory.device_peak_bytes / kMegabyte, memory.breakdown());
}

}  // namespace zt::dist
