// Trace spans of the pipeline engine: one span per executed instruction, named as the
// instruction (forward_pass, backward_pass, send_activation, recv_grad, ...), with its stage,
// micro-batch and chunk as args, so that scripts/plot-gantt draws the schedule as it ran and
// measures its bubble. Every rank of the grid writes its own file (named by its world rank).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "comm/communicator.h"
#include "dist/config.h"
#include "observe/trace_recorder.h"
#include "pipeline/schedule.h"

namespace zt::pipeline {

// "forward_pass", "send_activation", ...: InstructionKind's own names.
std::string_view instruction_span_name(InstructionKind kind);
// Passes on the compute track, sends and receives on the communication track, the batch's
// reductions and update on the optimizer track.
observe::TraceTrack instruction_track(InstructionKind kind);

// With the config's trace block enabled: why this rank cannot write in its folder ("" when it
// can, or without the block). The caller makes every rank agree before any goes on.
std::string trace_folder_problem(const dist::Config& config, int rank);
// The pipeline traces its batches itself, the stage engine not (its step would write the file
// while the optimizer_step span is still open, and name it by its data-parallel rank, which
// stages share): with the config's trace block enabled, configures the recorder for `world`'s
// rank and returns the stage engine's config with the block disabled.
dist::Config start_pipeline_trace(const dist::Config& config, comm::Communicator& world);
// A training batch begins: its instructions are recorded when `step` (counted from 1) is in
// the trace's window.
void begin_traced_batch(int64_t step);
// The batch ended: after the window's last step writes this rank's file (`announce`: prints
// where). A write that fails (a full disk) prints a warning, and training goes on.
void end_traced_batch(int64_t step, bool announce);
// What a window cut short recorded is written; the recorder forgets the session.
void finish_pipeline_trace();

// The span of one instruction, from construction to destruction (nothing when not recording).
class InstructionSpan {
 public:
  InstructionSpan(const Instruction& instruction, int stage);

 private:
  observe::TraceSpan span_;
};

}  // namespace zt::pipeline
