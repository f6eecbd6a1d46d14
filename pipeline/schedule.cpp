// The instruction lists of the 1F1B and interleaved 1F1B schedules (the compute order of
// Megatron-LM's schedules, DeepSpeed's instruction names) and their simulation.
#include "pipeline/schedule.h"

#include <fmt/format.h>

#include <set>
#include <stdexcept>
#include <tuple>

namespace zt::pipeline {

namespace {

using Kind = InstructionKind;

bool is_transfer(Kind kind) {
  return kind == Kind::send_activation || kind == Kind::send_grad ||
         kind == Kind::recv_activation || kind == Kind::recv_grad;
}

void check_stage(const ScheduleShape& shape, int stage) {
  shape.validate();
  if (stage < 0 || stage >= shape.stages)
    throw std::invalid_argument(
        fmt::format("pipeline schedule: stage {} is outside [0, {})", stage, shape.stages));
}

}  // namespace

std::string instruction_kind_name(InstructionKind kind) {
  switch (kind) {
    case Kind::load_micro_batch:
      return "LoadMicroBatch";
    case Kind::forward_pass:
      return "ForwardPass";
    case Kind::backward_pass:
      return "BackwardPass";
    case Kind::send_activation:
      return "SendActivation";
    case Kind::recv_activation:
      return "RecvActivation";
    case Kind::send_grad:
      return "SendGrad";
    case Kind::recv_grad:
      return "RecvGrad";
    case Kind::reduce_tied_grads:
      return "ReduceTiedGrads";
    case Kind::reduce_grads:
      return "ReduceGrads";
    case Kind::optimizer_step:
      return "OptimizerStep";
  }
  return "?";
}

std::string Instruction::str() const {
  if (micro_batch < 0) return instruction_kind_name(kind) + "()";
  return fmt::format("{}({}{})", instruction_kind_name(kind), micro_batch,
                     chunk > 0 ? fmt::format(".{}", chunk) : "");
}

void ScheduleShape::validate() const {
  if (stages < 1 || micro_batches < 1 || chunks < 1)
    throw std::invalid_argument(fmt::format(
        "pipeline schedule: stages ({}), micro-batches ({}) and chunks ({}) must be >= 1", stages,
        micro_batches, chunks));
  if (chunks > 1 && stages < 2)
    throw std::invalid_argument(fmt::format(
        "pipeline schedule: {} model chunks on one stage: the interleaved schedule needs at "
        "least 2 stages",
        chunks));
  if (chunks > 1 && micro_batches % stages != 0)
    throw std::invalid_argument(
        fmt::format("pipeline schedule: the interleaved schedule needs the micro-batches "
                    "(gradient_accumulation_steps, {}) to be a multiple of the stages ({})",
                    micro_batches, stages));
}

StageChunk stage_chunk_of(const ScheduleShape& shape, int virtual_stage) {
  return {.stage = virtual_stage % shape.stages, .chunk = virtual_stage / shape.stages};
}

int virtual_stage_of(const ScheduleShape& shape, int stage, int chunk) {
  return chunk * shape.stages + stage;
}

std::vector<Instruction> compute_order(const ScheduleShape& shape, int stage) {
  check_stage(shape, stage);
  const int p = shape.stages, m = shape.micro_batches, v = shape.chunks, total = m * v;
  // The k-th forward (backward) of a stage: micro-batches p at a time, chunk by chunk
  // (backwards go through the chunks from the last).
  auto pass = [&](Kind kind, int k) {
    int group_chunk = (k / p) % v;
    return Instruction{.kind = kind,
                       .micro_batch = (k / (p * v)) * p + k % p,
                       .chunk = kind == Kind::forward_pass ? group_chunk : v - 1 - group_chunk};
  };
  int warmup = v == 1 ? std::min(p - stage - 1, m)
                      : (m == p ? total : std::min((p - stage - 1) * 2 + (v - 1) * p, total));
  std::vector<Instruction> order;
  for (int k = 0; k < warmup; ++k) order.push_back(pass(Kind::forward_pass, k));
  for (int k = 0; k < total - warmup; ++k) {
    order.push_back(pass(Kind::forward_pass, warmup + k));
    order.push_back(pass(Kind::backward_pass, k));
  }
  for (int k = total - warmup; k < total; ++k) order.push_back(pass(Kind::backward_pass, k));
  return order;
}

static std::vector<Instruction> with_transfers(const ScheduleShape& shape, int stage,
                                               const std::vector<Instruction>& passes) {
  const int last = shape.virtual_stages() - 1;
  std::vector<Instruction> list;
  for (const Instruction& pass : passes) {
    const int vs = virtual_stage_of(shape, stage, pass.chunk);
    auto with_kind = [&](Kind kind) {
      Instruction instruction = pass;
      instruction.kind = kind;
      return instruction;
    };
    if (pass.kind == Kind::forward_pass) {
      list.push_back(with_kind(vs == 0 ? Kind::load_micro_batch : Kind::recv_activation));
      if (vs == last && vs != 0) list.push_back(with_kind(Kind::load_micro_batch));
      list.push_back(pass);
      if (vs != last) list.push_back(with_kind(Kind::send_activation));
    } else {
      if (vs != last) list.push_back(with_kind(Kind::recv_grad));
      list.push_back(pass);
      if (vs != 0) list.push_back(with_kind(Kind::send_grad));
    }
  }
  return list;
}

std::vector<Instruction> train_schedule(const ScheduleShape& shape, int stage) {
  std::vector<Instruction> list = with_transfers(shape, stage, compute_order(shape, stage));
  for (Kind kind : {Kind::reduce_tied_grads, Kind::reduce_grads, Kind::optimizer_step})
    list.push_back({.kind = kind});
  return list;
}

std::vector<Instruction> eval_schedule(const ScheduleShape& shape, int stage) {
  check_stage(shape, stage);
  std::vector<Instruction> forwards;
  for (int micro_batch = 0; micro_batch < shape.micro_batches; ++micro_batch)
    for (int chunk = 0; chunk < shape.chunks; ++chunk)
      forwards.push_back({.kind = Kind::forward_pass, .micro_batch = micro_batch, .chunk = chunk});
  return with_transfers(shape, stage, forwards);
}

StageChunk peer_of(const ScheduleShape& shape, int stage, const Instruction& instruction) {
  const int vs = virtual_stage_of(shape, stage, instruction.chunk);
  const bool downstream =
      instruction.kind == Kind::send_activation || instruction.kind == Kind::recv_grad;
  if (!is_transfer(instruction.kind))
    throw std::invalid_argument("pipeline schedule: " + instruction.str() + " has no peer");
  const int peer = downstream ? vs + 1 : vs - 1;
  if (peer < 0 || peer >= shape.virtual_stages())
    throw std::invalid_argument(
        fmt::format("pipeline schedule: {} of stage {} has no peer", instruction.str(), stage));
  return stage_chunk_of(shape, peer);
}

double bubble_formula(const ScheduleShape& shape) {
  double p = shape.stages;
  return (p - 1.0) / (double(shape.chunks) * shape.micro_batches + p - 1.0);
}

}  // namespace zt::pipeline
