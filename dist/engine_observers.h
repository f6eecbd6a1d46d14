// EngineObservers: what the engine's observability blocks attach to a training run, built from
// the config: the trace (observe/trace_recorder.h: module spans, collectives, phases), the comms
// logger, the flops profiler (its step: the one after profile_step steps, as DeepSpeed's), the
// CSV and TensorBoard monitors (rank 0: DeepSpeed's Train/Samples events) and the memory breakdown
// at log points. Only what a block enables is built: with none, the engine's communicator is used
// as given and no hook is registered.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "comm/communicator.h"
#include "core/allocator.h"
#include "dist/config.h"
#include "nn/module.h"
#include "observe/comms_logger.h"
#include "observe/flops_profiler.h"
#include "observe/module_tracer.h"
#include "observe/observed_communicator.h"
#include "observe/scalar_monitor.h"

namespace zt::dist {

// What a finished training step reports to the monitors.
struct StepRecord {
  int64_t step = 0;            // counted from 1
  int64_t global_samples = 0;  // the x of DeepSpeed's monitor events
  double loss = 0;             // this rank's mean loss over the step's micro-batches
  double lr = 0;
  double loss_scale = 0;  // 0: the loss is not scaled (no fp16)
};

class EngineObservers {
 public:
  // `data_parallel` and `model` must outlive this. Configures the trace recorder when the trace
  // is on, and registers the module spans' post-hooks (before the engine's own hooks).
  EngineObservers(const Config& config, comm::Communicator& data_parallel, nn::Module& model);
  // Writes a trace whose window was cut short (the run ended first).
  ~EngineObservers();
  EngineObservers(const EngineObservers&) = delete;
  EngineObservers& operator=(const EngineObservers&) = delete;

  // The communicator the engine's collectives should go through: an observing decorator when a
  // trace or the comms logger is on, else the one given.
  comm::Communicator& data_parallel() { return observed_ ? *observed_ : data_parallel_; }
  // Registers the module spans' pre-hooks; after the engine's own hooks, so that a stage-3
  // gather comes before the forward span it serves (observe/module_tracer.h).
  void watch_model();

  // The engine enters a phase ("forward", "backward", "step") of training step `step`
  // (counted from 1): the trace window opens at its first step.
  void begin_phase(std::string_view phase, int64_t step);
  // autograd's backward has returned: ends the module spans still open.
  void end_autograd_backward();
  // A training step ended (at the accumulation boundary): the trace window may close, the
  // flops profile is printed.
  void end_step(const StepRecord& record);
  // The engine's step log: the comms logger's table and the memory breakdown (rank 0 prints).
  void log(int64_t step, const MemoryStats& memory);

  // `value` of the event `name` at `x` to every monitor (rank 0; nothing elsewhere), written out
  // at the next step log.
  void write_event(const std::string& name, double value, int64_t x);

  observe::CommsLogger* comms_logger() const { return comms_logger_.get(); }
  const observe::FlopsProfiler* flops_profiler() const { return flops_profiler_.get(); }
  // The flops profiler's last report ("" before its step).
  const std::string& flops_report() const { return flops_report_; }

 private:
  const Config& config_;
  comm::Communicator& data_parallel_;
  std::unique_ptr<observe::CommsLogger> comms_logger_;
  std::unique_ptr<observe::ObservedCommunicator> observed_;
  std::unique_ptr<observe::ModuleTracer> module_tracer_;
  nn::Module& model_;
  std::unique_ptr<observe::FlopsProfiler> flops_profiler_;
  // csv_monitor and tensorboard, those enabled; rank 0 only.
  std::vector<std::unique_ptr<observe::ScalarMonitor>> monitors_;
  std::string flops_report_;
  // The phases of the current step: which one runs since when, and the seconds of each.
  std::string phase_;
  std::chrono::steady_clock::time_point phase_start_;
  double forward_seconds_ = 0, backward_seconds_ = 0, step_seconds_ = 0;
  void end_phase();
  void print_flops_profile(int64_t step);
  void write_monitor_events(const StepRecord& record);
};

// DeepSpeed's memory_breakdown line: "MA 1.2 MB Max_MA 3.4 MB | param 1.2 MiB (peak ...), ...".
std::string memory_breakdown_line(const MemoryStats& memory);

}  // namespace zt::dist
