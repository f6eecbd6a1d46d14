// The schedules' instruction lists: each pass exactly once, forwards before backwards, every
// send matched by a receive on the neighbour, no deadlock with asynchronous sends and blocking
// receives, and the warm-up depths of 1F1B that bound the activations kept alive.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "pipeline/schedule.h"

namespace zt::pipeline {
namespace {

using Kind = InstructionKind;

std::vector<std::vector<Instruction>> all_lists(const ScheduleShape& shape) {
  std::vector<std::vector<Instruction>> lists;
  for (int stage = 0; stage < shape.stages; ++stage) lists.push_back(train_schedule(shape, stage));
  return lists;
}

int count_of(const std::vector<Instruction>& list, Kind kind) {
  int count = 0;
  for (const Instruction& instruction : list) count += instruction.kind == kind ? 1 : 0;
  return count;
}

const ScheduleShape kShapes[] = {{1, 1, 1}, {1, 4, 1},  {2, 1, 1}, {2, 4, 1}, {3, 5, 1}, {4, 2, 1},
                                 {4, 8, 1}, {8, 16, 1}, {2, 2, 2}, {2, 4, 2}, {2, 4, 3}, {4, 4, 2},
                                 {4, 8, 2}, {4, 16, 4}, {3, 6, 2}, {8, 8, 2}};

TEST_CASE("every_schedule_runs_to_its_end_with_blocking_matched_transfers") {
  for (const ScheduleShape& shape : kShapes) {
    CAPTURE(shape.stages);
    CAPTURE(shape.micro_batches);
    CAPTURE(shape.chunks);
    auto lists = all_lists(shape);
    CHECK(simulate(shape, lists) == "");
    // Every stage runs each (micro-batch, chunk) forward and backward exactly once.
    for (int stage = 0; stage < shape.stages; ++stage) {
      std::map<std::tuple<Kind, int, int>, int> passes;
      for (const Instruction& instruction : lists[size_t(stage)])
        if (instruction.kind == Kind::forward_pass || instruction.kind == Kind::backward_pass)
          passes[{instruction.kind, instruction.micro_batch, instruction.chunk}] += 1;
      CHECK(passes.size() == size_t(2 * shape.micro_batches * shape.chunks));
      for (const auto& [key, times] : passes) CHECK(times == 1);
      CHECK(lists[size_t(stage)].back().kind == Kind::optimizer_step);
    }
    // Each boundary carries one activation and one gradient per micro-batch and chunk.
    int sends = 0, receives = 0;
    for (const auto& list : lists) {
      sends += count_of(list, Kind::send_activation) + count_of(list, Kind::send_grad);
      receives += count_of(list, Kind::recv_activation) + count_of(list, Kind::recv_grad);
    }
    CHECK(sends == 2 * shape.micro_batches * (shape.virtual_stages() - 1));
    CHECK(receives == sends);
    CHECK(simulate(shape, {eval_schedule(shape, 0)}).empty() == (shape.stages == 1));
  }
}

TEST_CASE("simulation_finds_deadlocks_and_passes_out_of_order") {
  ScheduleShape shape{2, 2, 1};
  auto lists = all_lists(shape);
  // Stage 0 waiting for a gradient before it sent the activation that would produce it.
  std::vector<Instruction> early = lists[0];
  auto receive = std::find_if(early.begin(), early.end(),
                              [](const Instruction& i) { return i.kind == Kind::recv_grad; });
  std::rotate(early.begin(), receive, receive + 1);
  CHECK(simulate(shape, {early, lists[1]}) ==
        "deadlock: stage 0 waits in RecvGrad(0); stage 1 waits in RecvActivation(0);");
  // A backward moved before its forward on the last stage.
  std::vector<Instruction> reordered = lists[1];
  auto backward = std::find_if(reordered.begin(), reordered.end(),
                               [](const Instruction& i) { return i.kind == Kind::backward_pass; });
  std::rotate(reordered.begin(), backward, backward + 1);
  CHECK(simulate(shape, {lists[0], reordered}) ==
        "stage 1: BackwardPass(0) runs before its forward");
}

TEST_CASE("one_f_one_b_warms_up_with_stages_minus_rank_minus_one_forwards") {
  ScheduleShape shape{4, 8, 1};
  for (int stage = 0; stage < shape.stages; ++stage) {
    std::vector<Instruction> order = compute_order(shape, stage);
    int leading_forwards = 0;
    while (order[size_t(leading_forwards)].kind == Kind::forward_pass) ++leading_forwards;
    // Warm-up forwards, then the steady state's first forward before its first backward.
    CHECK(leading_forwards == shape.stages - stage);
    // Then strictly alternating until the cool-down.
    CHECK(order[size_t(leading_forwards)] ==
          Instruction{.kind = Kind::backward_pass, .micro_batch = 0});
  }
}

TEST_CASE("interleaved_schedule_visits_chunks_micro_batches_p_at_a_time") {
  ScheduleShape shape{2, 4, 2};
  std::vector<Instruction> order = compute_order(shape, 0);
  // Stage 0 warms up with (p - 1) * 2 + (v - 1) * p = 4 forwards: micro-batches 0, 1 of
  // chunk 0, then 0, 1 of chunk 1.
  std::vector<std::pair<int, int>> expected = {{0, 0}, {1, 0}, {0, 1}, {1, 1}, {2, 0}};
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(order[i].kind == Kind::forward_pass);
    CHECK(order[i].micro_batch == expected[i].first);
    CHECK(order[i].chunk == expected[i].second);
  }
  // The first backward is micro-batch 0 of the last chunk.
  CHECK(order[5] == Instruction{.kind = Kind::backward_pass, .micro_batch = 0, .chunk = 1});
  CHECK(stage_chunk_of(shape, 3) == StageChunk{.stage = 1, .chunk = 1});
  CHECK(peer_of(shape, 1, {.kind = Kind::send_activation, .micro_batch = 0, .chunk = 0}) ==
        StageChunk{.stage = 0, .chunk = 1});
}

TEST_CASE("schedule_shapes_it_cannot_run_are_errors_naming_the_value") {
  CHECK_THROWS_WITH(train_schedule({2, 3, 2}, 0),
                    "pipeline schedule: the interleaved schedule needs the micro-batches "
                    "(gradient_accumulation_steps, 3) to be a multiple of the stages (2)");
  CHECK_THROWS_WITH(train_schedule({2, 0, 1}, 0),
                    "pipeline schedule: stages (2), micro-batches (0) and chunks (1) must be >= 1");
  CHECK_THROWS_WITH(train_schedule({1, 2, 2}, 0),
                    "pipeline schedule: 2 model chunks on one stage: the interleaved schedule "
                    "needs at least 2 stages");
  CHECK_THROWS_WITH(train_schedule({2, 2, 1}, 2), "pipeline schedule: stage 2 is outside [0, 2)");
}

TEST_CASE("schedule_table_shows_the_bubble_of_the_formula") {
  ScheduleShape shape{2, 2, 1};
  std::string table = schedule_table(shape);
  CHECK(table.find("bubble (p-1)/(m+p-1) = 0.333") != std::string::npos);
  CHECK(table.find("deadlock") == std::string::npos);
  // Step 1: stage 0 loads micro-batch 0 while stage 1 waits for it.
  CHECK(table.find("    1       L0        .") != std::string::npos);
  CHECK(bubble_formula({4, 8, 2}) == doctest::Approx(3.0 / 19.0));
}

}  // namespace
}  // namespace zt::pipeline
