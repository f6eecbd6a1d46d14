// Running the stages' instruction lists against each other in lockstep rounds: in each round
// every stage whose next instruction can run executes it (a receive once its matching send ran
// in an earlier round; sends never wait). The rounds are the time steps of schedule_table().
#include <fmt/format.h>

#include <set>
#include <sstream>
#include <tuple>

#include "pipeline/schedule.h"

namespace zt::pipeline {

namespace {

using Kind = InstructionKind;

bool is_recv(Kind kind) {
  return kind == Kind::recv_activation || kind == Kind::recv_grad;
}

Kind matching_kind(Kind kind) {
  switch (kind) {
    case Kind::send_activation:
      return Kind::recv_activation;
    case Kind::recv_activation:
      return Kind::send_activation;
    case Kind::send_grad:
      return Kind::recv_grad;
    case Kind::recv_grad:
      return Kind::send_grad;
    default:
      return kind;
  }
}

using PassKey = std::tuple<int, int, int>;  // stage, micro-batch, chunk

struct Simulation {
  const ScheduleShape& shape;
  const std::vector<std::vector<Instruction>>& lists;
  std::vector<size_t> next;
  std::set<PassKey> forwarded, backwarded, received_activation, received_grad;
  // Sends that ran: (kind, receiving stage, micro-batch, receiving chunk).
  std::set<std::tuple<Kind, int, int, int>> sent;
  std::string problem;

  const Instruction* current(int stage) const {
    return next[size_t(stage)] < lists[size_t(stage)].size()
               ? &lists[size_t(stage)][next[size_t(stage)]]
               : nullptr;
  }
  // Whether the send that a receive of `stage` waits for has run.
  bool matched(int stage, const Instruction& instruction) const {
    return sent.contains(
        {matching_kind(instruction.kind), stage, instruction.micro_batch, instruction.chunk});
  }
  bool can_run(int stage) const {
    const Instruction* instruction = current(stage);
    if (instruction == nullptr) return false;
    if (is_recv(instruction->kind)) return matched(stage, *instruction);
    if (instruction->kind == Kind::reduce_tied_grads && shape.stages > 1 &&
        (stage == 0 || stage == shape.stages - 1)) {
      const Instruction* other = current(stage == 0 ? shape.stages - 1 : 0);
      return other != nullptr && other->kind == Kind::reduce_tied_grads;
    }
    return true;
  }
  // Checks what must come before the instruction; records the first violation.
  void run(int stage) {
    const Instruction& instruction = *current(stage);
    PassKey key{stage, instruction.micro_batch, instruction.chunk};
    const int vs = virtual_stage_of(shape, stage, instruction.chunk);
    const int last = shape.virtual_stages() - 1;
    auto require = [&](bool condition, const char* what) {
      if (!condition && problem.empty())
        problem = fmt::format("stage {}: {} {}", stage, instruction.str(), what);
    };
    switch (instruction.kind) {
      case Kind::forward_pass:
        require(vs == 0 || received_activation.contains(key), "runs before its input arrived");
        forwarded.insert(key);
        break;
      case Kind::backward_pass:
        require(forwarded.contains(key), "runs before its forward");
        require(vs == last || received_grad.contains(key), "runs before its gradient arrived");
        backwarded.insert(key);
        break;
      case Kind::send_activation:
      case Kind::send_grad: {
        require(instruction.kind == Kind::send_activation ? forwarded.contains(key)
                                                          : backwarded.contains(key),
                "sends before its pass");
        StageChunk peer = peer_of(shape, stage, instruction);
        sent.insert({instruction.kind, peer.stage, instruction.micro_batch, peer.chunk});
        break;
      }
      case Kind::recv_activation:
        received_activation.insert(key);
        break;
      case Kind::recv_grad:
        received_grad.insert(key);
        break;
      default:
        break;
    }
    next[size_t(stage)] += 1;
  }
  // One round; returns the instructions each stage ran (null: it waited or was done).
  std::vector<const Instruction*> round() {
    std::vector<bool> runs(size_t(shape.stages));
    for (int stage = 0; stage < shape.stages; ++stage) runs[size_t(stage)] = can_run(stage);
    std::vector<const Instruction*> ran(size_t(shape.stages), nullptr);
    for (int stage = 0; stage < shape.stages; ++stage) {
      if (!runs[size_t(stage)]) continue;
      ran[size_t(stage)] = current(stage);
      run(stage);
    }
    return ran;
  }
  bool finished() const {
    for (int stage = 0; stage < shape.stages; ++stage)
      if (current(stage) != nullptr) return false;
    return true;
  }
  std::string stuck() const {
    std::string line = "deadlock:";
    for (int stage = 0; stage < shape.stages; ++stage) {
      const Instruction* waiting = current(stage);
      if (waiting != nullptr) line += fmt::format(" stage {} waits in {};", stage, waiting->str());
    }
    return line;
  }
};

std::string cell_of(const Instruction* instruction, bool chunks) {
  if (instruction == nullptr) return ".";
  std::string number = instruction->micro_batch < 0
                           ? ""
                           : fmt::format("{}{}", instruction->micro_batch,
                                         chunks ? fmt::format(".{}", instruction->chunk) : "");
  switch (instruction->kind) {
    case Kind::load_micro_batch:
      return "L" + number;
    case Kind::forward_pass:
      return "F" + number;
    case Kind::backward_pass:
      return "B" + number;
    case Kind::send_activation:
      return "sA" + number;
    case Kind::recv_activation:
      return "rA" + number;
    case Kind::send_grad:
      return "sG" + number;
    case Kind::recv_grad:
      return "rG" + number;
    case Kind::reduce_tied_grads:
      return "TIED";
    case Kind::reduce_grads:
      return "REDUCE";
    case Kind::optimizer_step:
      return "STEP";
  }
  return "?";
}

}  // namespace

std::string simulate(const ScheduleShape& shape,
                     const std::vector<std::vector<Instruction>>& lists) {
  if (lists.size() != size_t(shape.stages))
    return fmt::format("{} instruction lists for {} stages", lists.size(), shape.stages);
  Simulation simulation{.shape = shape, .lists = lists, .next = std::vector<size_t>(lists.size())};
  while (!simulation.finished() && simulation.problem.empty()) {
    std::vector<const Instruction*> ran = simulation.round();
    bool progressed = false;
    for (const Instruction* instruction : ran) progressed = progressed || instruction != nullptr;
    if (!progressed) return simulation.stuck();
  }
  return simulation.problem;
}

std::string schedule_table(const ScheduleShape& shape) {
  std::vector<std::vector<Instruction>> lists;
  for (int stage = 0; stage < shape.stages; ++stage) lists.push_back(train_schedule(shape, stage));
  Simulation simulation{.shape = shape, .lists = lists, .next = std::vector<size_t>(lists.size())};
  const bool chunks = shape.chunks > 1;
  std::ostringstream table;
  table << fmt::format(
      "pipeline schedule: {} stages, {} micro-batches, {} chunk(s) per stage ({}), bubble "
      "(p-1)/({}m+p-1) = {:.3f}\n",
      shape.stages, shape.micro_batches, shape.chunks, chunks ? "interleaved 1F1B" : "1F1B",
      chunks ? "v" : "", bubble_formula(shape));
  table << "L load, F forward, B backward, sA/rA send/receive activation, sG/rG send/receive "
           "gradient (micro-batch"
        << (chunks ? ".chunk" : "") << "), . waiting\n";
  table << fmt::format("{:>5}", "step");
  for (int stage = 0; stage < shape.stages; ++stage)
    table << fmt::format(" {:>8}", fmt::format("stage {}", stage));
  table << "\n";
  for (int step = 1; !simulation.finished(); ++step) {
    std::vector<const Instruction*> ran = simulation.round();
    bool progressed = false;
    table << fmt::format("{:>5}", step);
    for (const Instruction* instruction : ran) {
      progressed = progressed || instruction != nullptr;
      table << fmt::format(" {:>8}", cell_of(instruction, chunks));
    }
    table << "\n";
    if (!progressed) {
      table << simulation.stuck() << "\n";
      break;
    }
  }
  return table.str();
}

}  // namespace zt::pipeline
