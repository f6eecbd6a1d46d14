// The comms logger through the engine: what it logs per collective kind equals the
// communicator's own counters (calls, payload and buffer bytes), its bus bandwidth is the
// algorithm bandwidth times the ring factor (2(N-1)/N for all_reduce, (N-1)/N for
// reduce_scatter and all_gather), and busbw * latency is the ring model's payload.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <string>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::dist {
namespace {

using comm::CollectiveKind;
using comm::MpiCommunicator;
using comm::ProcessGrid;
using testing::test_world;
using namespace testing;

Config logged_config(int world, int stage, bool prof_all) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {},
    "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 20000,
                          "stage3_param_persistence_threshold": 0}},
    "comms_logger": {{"enabled": true, "prof_all": {}, "prof_ops": ["all_gather"]}}
  }})",
                                 kGlobalBatch, stage, prof_all);
  return parse_config(text, "test_config", world, nullptr);
}

void train(Engine& engine, int steps) {
  MpiCommunicator& world = test_world();
  int64_t micro = kGlobalBatch / world.size();
  for (int step = 0; step < steps; ++step) {
    GlobalBatch batch = global_batch(step);
    int64_t first = world.rank() * micro;
    Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro));
    engine.backward(cross_entropy(logits, ops::narrow(batch.targets, 0, first, micro)));
    engine.step();
  }
}

// The ring factor written out per kind, independently of the logger's.
double expected_bus_factor(const std::string& name, int ranks) {
  if (name == "all_reduce") return 2.0 * (ranks - 1) / ranks;
  if (name == "reduce_scatter" || name == "all_gather") return double(ranks - 1) / ranks;
  return 1.0;
}

TEST_CASE("comms_logger's bytes equal the communicator's counters at stages 0-3") {
  MpiCommunicator& world = test_world();
  for (int stage : {0, 1, 2, 3}) {
    CAPTURE(stage);
    ProcessGrid grid = ProcessGrid::data_parallel(world);
    Engine engine(logged_config(world.size(), stage, true), make_mlp(), grid.data_group());
    train(engine, 3);
    const observe::CommsLogger* logger = engine.comms_logger();
    REQUIRE(logger != nullptr);
    const comm::CommStats& stats = engine.data_parallel_communicator().stats();
    int64_t logged_calls = 0;
    for (size_t k = 0; k < comm::kCollectiveKindCount; ++k) {
      CollectiveKind kind = CollectiveKind(k);
      CAPTURE(comm::collective_kind_name(kind));
      CHECK(logger->calls(kind) == stats[kind].calls);
      CHECK(logger->payload_bytes(kind) == stats[kind].payload_bytes);
      CHECK(logger->buffer_bytes(kind) == stats[kind].buffer_bytes);
      logged_calls += logger->calls(kind);
    }
    CHECK(logged_calls > 0);
    // The stage's signature collective is there (stage 0 all-reduces, 1-3 reduce-scatter).
    CHECK(logger->calls(stage == 0 ? CollectiveKind::all_reduce : CollectiveKind::reduce_scatter) >
          0);
  }
}

TEST_CASE("comms_logger's busbw is algbw times the ring factor; busbw x latency is the payload") {
  MpiCommunicator& world = test_world();
  for (int stage : {0, 3}) {
    ProcessGrid grid = ProcessGrid::data_parallel(world);
    Engine engine(logged_config(world.size(), stage, true), make_mlp(), grid.data_group());
    train(engine, 2);
    for (const auto& [name, sizes] : engine.comms_logger()->records()) {
      for (const auto& [bytes, entry] : sizes) {
        CAPTURE(name);
        CAPTURE(bytes);
        double factor = expected_bus_factor(name, world.size());
        CHECK(entry.busbw_sum == doctest::Approx(entry.algbw_sum * factor).epsilon(1e-12));
        // Each call's payload is its message times the factor, rounded down.
        double payload_per_call = double(entry.payload_bytes) / double(entry.count);
        CHECK(payload_per_call <= bytes * factor + 1e-9);
        CHECK(payload_per_call > bytes * factor - 1.0);
      }
    }
    std::string table = engine.comms_logger()->summary();
    CHECK(table.find("busbw_avg (Gbps)") != std::string::npos);
    CHECK(table.find(stage == 0 ? "all_reduce" : "reduce_scatter") != std::string::npos);
  }
}

TEST_CASE("comms_logger with prof_all false logs only the kinds in prof_ops") {
  MpiCommunicator& world = test_world();
  ProcessGrid grid = ProcessGrid::data_parallel(world);
  Engine engine(logged_config(world.size(), 3, false), make_mlp(), grid.data_group());
  train(engine, 2);
  const observe::CommsLogger* logger = engine.comms_logger();
  CHECK(logger->calls(CollectiveKind::all_gather) ==
        engine.data_parallel_communicator().stats()[CollectiveKind::all_gather].calls);
  CHECK(logger->calls(CollectiveKind::reduce_scatter) == 0);
  CHECK(logger->records().size() == 1);
}

}  // namespace
}  // namespace zt::dist
