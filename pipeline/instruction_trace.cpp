// See pipeline/instruction_trace.h.
#include "pipeline/instruction_trace.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

namespace zt::pipeline {

using Kind = InstructionKind;

std::string_view instruction_span_name(InstructionKind kind) {
  switch (kind) {
    case Kind::load_micro_batch:
      return "load_micro_batch";
    case Kind::forward_pass:
      return "forward_pass";
    case Kind::backward_pass:
      return "backward_pass";
    case Kind::send_activation:
      return "send_activation";
    case Kind::recv_activation:
      return "recv_activation";
    case Kind::send_grad:
      return "send_grad";
    case Kind::recv_grad:
      return "recv_grad";
    case Kind::reduce_tied_grads:
      return "reduce_tied_grads";
    case Kind::reduce_grads:
      return "reduce_grads";
    case Kind::optimizer_step:
      return "optimizer_step";
  }
  return "instruction";
}

observe::TraceTrack instruction_track(InstructionKind kind) {
  switch (kind) {
    case Kind::send_activation:
    case Kind::recv_activation:
    case Kind::send_grad:
    case Kind::recv_grad:
      return observe::TraceTrack::communication;
    case Kind::reduce_tied_grads:
    case Kind::reduce_grads:
    case Kind::optimizer_step:
      return observe::TraceTrack::optimizer;
    default:
      return observe::TraceTrack::compute;
  }
}

std::string trace_folder_problem(const dist::Config& config, int rank) {
  const observe::TraceConfig& trace = config.observe.trace;
  if (!trace.enabled) return "";
  namespace fs = std::filesystem;
  std::error_code error;
  fs::create_directories(trace.output_path, error);
  const fs::path probe = fs::path(trace.output_path) / fmt::format(".write_probe_rank{}", rank);
  const bool writable = !error && std::ofstream(probe, std::ios::binary | std::ios::trunc).good();
  const std::string why = error ? error.message() : std::strerror(errno);
  std::error_code ignored;
  fs::remove(probe, ignored);
  if (writable) return "";
  return fmt::format("trace.output_path: cannot write in the folder {} ({})", trace.output_path,
                     why);
}

dist::Config start_pipeline_trace(const dist::Config& config, comm::Communicator& world) {
  const observe::TraceConfig& trace = config.observe.trace;
  if (!trace.enabled) return config;
  observe::TraceRecorder::instance().configure({.output_dir = trace.output_path,
                                                .first_step = trace.first_step,
                                                .last_step = trace.last_step,
                                                .rank = world.rank(),
                                                .world_size = world.size()});
  dist::Config stage = config;
  stage.observe.trace.enabled = false;
  return stage;
}

void begin_traced_batch(int64_t step) {
  observe::TraceRecorder::instance().begin_step(step);  // nothing when not configured
}

void end_traced_batch(int64_t step, bool announce) {
  std::string path;
  try {
    path = observe::TraceRecorder::instance().end_step(step);
  } catch (const std::exception& error) {
    fmt::print(stderr, "warning: trace: {}\n", error.what());
  }
  if (!path.empty() && announce) {
    fmt::print("trace: step {} written to {} (one file per rank of the pipeline grid)\n", step,
               path);
    std::fflush(stdout);
  }
}

void finish_pipeline_trace() {
  observe::TraceRecorder& recorder = observe::TraceRecorder::instance();
  if (!recorder.configured()) return;
  try {
    recorder.flush();
  } catch (const std::exception& error) {
    fmt::print(stderr, "trace: {}\n", error.what());
  }
  recorder.reset();
}

InstructionSpan::InstructionSpan(const Instruction& instruction, int stage)
    : span_(instruction_span_name(instruction.kind), "pipeline",
            instruction_track(instruction.kind)) {
  if (span_.active()) {
    span_.set_args(
        {{"stage", stage}, {"micro_batch", instruction.micro_batch}, {"chunk", instruction.chunk}});
  }
}

}  // namespace zt::pipeline
