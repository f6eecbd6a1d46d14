// Pipeline schedules as instruction lists, one per stage, in DeepSpeed's vocabulary: what a
// stage loads, computes, sends and receives for each micro-batch, then the batch's gradient
// reductions and update. Two schedules: 1F1B (PipeDream-Flush: after a warm-up of forwards a
// stage alternates one forward and one backward) and interleaved 1F1B (each stage holds
// `chunks` model chunks; virtual stage chunk * stages + stage, activations go round the ring).
// Sends are asynchronous (they complete while the stage goes on) and receives block until
// their data is there, as in Megatron-LM's batched point-to-point; simulate() checks that the
// lists of all stages then run to their end.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zt::pipeline {

enum class InstructionKind : uint8_t {
  load_micro_batch,  // first virtual stage: the inputs; last virtual stage: the labels
  forward_pass,
  backward_pass,
  send_activation,
  recv_activation,
  send_grad,
  recv_grad,
  reduce_tied_grads,  // all-reduce of tied layers' gradients between the stages that hold them
  reduce_grads,       // data-parallel reduction (ZeRO) of the stage's gradients
  optimizer_step
};
std::string instruction_kind_name(InstructionKind kind);  // DeepSpeed's class name

struct Instruction {
  InstructionKind kind;
  int micro_batch = -1;  // -1: the batch-level instructions
  int chunk = 0;         // the model chunk of the stage it concerns
  bool operator==(const Instruction&) const = default;
  std::string str() const;  // "ForwardPass(3)" or, with chunks, "ForwardPass(3.1)"
};

struct ScheduleShape {
  int stages = 1;
  int micro_batches = 1;
  int chunks = 1;  // model chunks per stage; > 1 is the interleaved schedule
  // Throws std::invalid_argument naming the value: every count >= 1, and interleaving needs
  // 2 stages or more and micro_batches a multiple of stages (its order takes micro-batches p at a
  // time).
  void validate() const;
  int virtual_stages() const { return stages * chunks; }
};

// Where a virtual stage lives and who its neighbours are.
struct StageChunk {
  int stage = 0;
  int chunk = 0;
  bool operator==(const StageChunk&) const = default;
};
StageChunk stage_chunk_of(const ScheduleShape& shape, int virtual_stage);
int virtual_stage_of(const ScheduleShape& shape, int stage, int chunk);

// The forward and backward passes of one stage in execution order (no communication).
std::vector<Instruction> compute_order(const ScheduleShape& shape, int stage);
// The full training instruction list of `stage`.
std::vector<Instruction> train_schedule(const ScheduleShape& shape, int stage);
// Evaluation: loads, forwards and activation transfers only.
std::vector<Instruction> eval_schedule(const ScheduleShape& shape, int stage);

// The peer stage of a send or receive instruction of `stage`, and the chunk it concerns there.
StageChunk peer_of(const ScheduleShape& shape, int stage, const Instruction& instruction);

// Runs the lists of every stage with asynchronous sends, receives that wait for their matching
// send, and ReduceTiedGrads as a meeting of the first and last stage.
// Returns "" when every list runs to its end, else one line naming what each stuck stage waits
// on; also names a backward before its forward or an unmatched transfer.
std::string simulate(const ScheduleShape& shape,
                     const std::vector<std::vector<Instruction>>& lists);

// The schedule as a table for teaching: one column per stage, one row per time step of a
// simulated run in which every instruction takes one step (a stage waiting shows "."):
// forwards "F3", backwards "B3" (with chunks "F3.1"), sends and receives by their arrows.
std::string schedule_table(const ScheduleShape& shape);

// The bubble fraction of the formulas: (p-1)/(m+p-1), or (p-1)/(v*m+p-1) interleaved.
double bubble_formula(const ScheduleShape& shape);

}  // namespace zt::pipeline
