// See pipeline/instruction_trace.h.
#include "pipeline/instruction_trace.h"

#include <fmt/format.h>

#include <cstdio>
#include <exception>
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
  const std::string path = observe::TraceRecorder::instance().end_step(step);
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
