// A distillation teacher partitioned at ZeRO stage 3 next to a stage-3 student: every step's
// distillation loss equals the one with the teacher kept whole, and each rank holds about 1/N
// of the teacher's parameters (the host allocator's live bytes, and the holder's own count).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <vector>

#include "comm/process_grid.h"
#include "compress/distillation.h"
#include "core/allocator.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::dist {
namespace {

using namespace testing;

constexpr int kSteps = 4;

Config stage3_config(int world) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "zero_optimization": {{"stage": 3, "stage3_param_persistence_threshold": 0}}
  }})",
                                 kGlobalBatch, world);
  return parse_config(text, "test_config", world, nullptr);
}

// A teacher of the student's shape with other weights (a different seed).
std::shared_ptr<nn::Module> make_teacher() {
  std::shared_ptr<nn::Module> teacher = make_mlp();
  manual_seed(99);
  for (const Tensor& parameter : teacher->parameters()) {
    Tensor fresh = randn(parameter.sizes());
    std::copy_n(fresh.data_ptr<float>(), parameter.numel(), parameter.data_ptr<float>());
  }
  return teacher;
}

int64_t host_live_bytes() {
  return cpu_allocator().accounting().stats().total_live_bytes;
}

struct DistillationRun {
  std::vector<double> losses;    // each step's distillation loss on this rank's micro-batch
  int64_t teacher_bytes = 0;     // host bytes the teacher added, after partitioning
  int64_t teacher_resident = 0;  // the teacher's own count of parameter elements held
  int64_t forward_growth = 0;    // live bytes after a teacher call minus before (released?)
};

DistillationRun distil(bool partition_teacher) {
  comm::MpiCommunicator& world = test_world();
  comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
  Config config = stage3_config(world.size());
  Engine engine(config, make_mlp(), grid.data_group());
  DistillationRun run;
  const int64_t before_teacher = host_live_bytes();
  compress::Teacher teacher(make_teacher());
  if (partition_teacher)
    teacher.partition_stage3(engine.config().zero_optimization,
                             engine.data_parallel_communicator());
  run.teacher_bytes = host_live_bytes() - before_teacher;
  run.teacher_resident = teacher.resident_parameter_numel();
  const int64_t micro = kGlobalBatch / world.size();
  for (int step = 0; step < kSteps; ++step) {
    GlobalBatch batch = global_batch(step);
    const int64_t first = world.rank() * micro;
    const Tensor inputs = ops::narrow(batch.inputs, 0, first, micro);
    Tensor logits = engine.forward(inputs);
    const int64_t before_call = host_live_bytes();
    Tensor teacher_logits = teacher(inputs);
    run.forward_growth = host_live_bytes() - before_call - teacher_logits.numel() * 4;
    Tensor loss = compress::distillation_loss(logits, teacher_logits,
                                              ops::narrow(batch.targets, 0, first, micro),
                                              {.alpha = 0.5, .temperature = 2.0});
    run.losses.push_back(loss.item());
    engine.backward(loss);
    engine.step();
  }
  return run;
}

TEST_CASE("frozen teacher at stage 3: the whole teacher's losses, 1/N of its parameters") {
  const int world = test_world().size();
  const DistillationRun whole = distil(false);
  const DistillationRun partitioned = distil(true);
  REQUIRE(partitioned.losses.size() == whole.losses.size());
  for (size_t step = 0; step < whole.losses.size(); ++step) {
    // The gathered parameters are the whole teacher's, bit for bit.
    CHECK_MESSAGE(partitioned.losses[step] == whole.losses[step], "step ", step);
  }
  // The teacher's layers hold 64*128+128, 128*128+128 and 128*10+10 elements; each padded to
  // a multiple of N and cut into N slices.
  const int64_t layers[] = {64 * 128 + 128, 128 * 128 + 128, 128 * 10 + 10};
  int64_t total = 0, slices = 0;
  for (int64_t numel : layers) {
    total += numel;
    slices += (numel + world - 1) / world;
  }
  CHECK(whole.teacher_resident == total);
  CHECK(partitioned.teacher_resident == slices);
  CHECK(whole.teacher_bytes == total * 4);
  // The allocator sees the slices (within one 64-byte alignment a buffer), not the whole.
  CHECK(partitioned.teacher_bytes >= slices * 4);
  CHECK(partitioned.teacher_bytes <= slices * 4 + 3 * 64);
  if (world > 1) CHECK(partitioned.teacher_bytes < whole.teacher_bytes * 0.6 * 2 / world);
  // A call leaves nothing gathered behind.
  CHECK(partitioned.forward_growth <= 0);
}

}  // namespace
}  // namespace zt::dist
