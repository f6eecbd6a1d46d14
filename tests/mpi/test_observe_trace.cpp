// The trace of ZeRO stage 3 (observe/trace_recorder.h through the engine): every rank writes a
// valid trace-event file for exactly the chosen step, whose spans come in the order a stage-3
// step runs them: each Linear's gather before its forward, forwards in module order, backwards
// in reverse, a reduce-scatter per parameter group, then the optimizer update.
// With ZT_TRACE_DIR set, the files are left there for scripts/check-traces to merge.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "observe/trace_recorder.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::dist {
namespace {

using comm::MpiCommunicator;
using comm::ProcessGrid;
using nlohmann::json;
using testing::test_world;
using namespace testing;

// One folder for every rank: rank 0's choice, broadcast.
std::string shared_trace_dir() {
  if (const char* kept = std::getenv("ZT_TRACE_DIR")) return kept;
  Tensor pid = full({1}, double(getpid()), {.dtype = DType::i64});
  test_world().broadcast(pid, 0);
  return (std::filesystem::temp_directory_path() /
          fmt::format("zt_trace_test_{}", int64_t(pid.item())))
      .string();
}

Config traced_config(int world, const std::string& dir, int stage) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {},
    "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "zero_optimization": {{"stage": {}, "stage3_param_persistence_threshold": 0}},
    "trace": {{"enabled": true, "output_path": "{}", "steps": "2:2"}}
  }})",
                                 kGlobalBatch, stage, dir);
  return parse_config(text, "test_config", world, nullptr);
}

struct Span {
  std::string name, category;
  double start = 0, end = 0;
  json args;
};

// The "X" events of one rank's file, by start time.
std::vector<Span> read_spans(const std::string& path, int rank) {
  std::ifstream file(path);
  REQUIRE(file.good());
  json trace = json::parse(file);  // throws on a file that is not valid JSON
  std::vector<Span> spans;
  for (const json& event : trace.at("traceEvents")) {
    CHECK(event.at("pid") == rank);
    if (event.at("ph") != "X") continue;
    double start = event.at("ts").get<double>();
    spans.push_back({event.at("name"), event.at("cat"), start,
                     start + event.at("dur").get<double>(), event.value("args", json())});
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.start < b.start; });
  return spans;
}

const Span& find_span(const std::vector<Span>& spans, const std::string& name) {
  for (const Span& span : spans) {
    if (span.name == name) return span;
  }
  FAIL("no span named " << name);
  throw std::logic_error("unreachable");
}

// A gather (or prefetch) of the Linear at `index` of the MLP.
const Span* gather_of(const std::vector<Span>& spans, int index, double before) {
  const Span* found = nullptr;
  for (const Span& span : spans) {
    bool is_gather = span.category == "gather" || span.category == "prefetch";
    if (is_gather && span.name.ends_with(fmt::format("module '{}' (Linear)", index)) &&
        span.start < before)
      found = &span;
  }
  return found;
}

void train_three_steps(Engine& engine) {
  MpiCommunicator& world = test_world();
  int64_t micro = kGlobalBatch / world.size();
  for (int step = 0; step < 3; ++step) {
    GlobalBatch batch = global_batch(step);
    int64_t first = world.rank() * micro;
    Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro));
    engine.backward(cross_entropy(logits, ops::narrow(batch.targets, 0, first, micro)));
    engine.step();
  }
}

TEST_CASE("a stage-3 trace holds step 2's spans in the order the step runs them") {
  MpiCommunicator& world = test_world();
  std::string dir = shared_trace_dir();
  {
    ProcessGrid grid = ProcessGrid::data_parallel(world);
    Engine engine(traced_config(world.size(), dir, 3), make_mlp(), grid.data_group());
    train_three_steps(engine);
  }
  CHECK(!observe::TraceRecorder::recording());
  std::string path = fmt::format("{}/trace_rank{}.json", dir, world.rank());
  std::vector<Span> spans = read_spans(path, world.rank());
  // Exactly one step: one forward, backward and step phase.
  int phases = 0;
  for (const Span& span : spans) phases += span.category == "phase";
  CHECK(phases == 3);
  const Span& forward = find_span(spans, "forward");
  const Span& backward = find_span(spans, "backward");
  const Span& update = find_span(spans, "optimizer update");
  CHECK(forward.end <= backward.start);
  CHECK(backward.end <= update.start);
  // Forwards of the Linears in module order, each after its parameters' gather ended.
  double previous_forward = forward.start;
  for (int index : {0, 2, 4}) {
    const Span& linear = find_span(spans, fmt::format("{} (Linear)", index));
    CHECK(linear.start >= previous_forward);
    previous_forward = linear.start;
    const Span* gather = gather_of(spans, index, linear.start);
    REQUIRE_MESSAGE(gather != nullptr, "no gather of Linear " << index << " before its forward");
    CHECK(gather->end <= linear.start);
    // Released after the forward (the first release of that module in this step).
    const Span& release = find_span(spans, fmt::format("release module '{}' (Linear)", index));
    CHECK(release.start >= linear.end);
  }
  // Backwards in reverse module order, inside the backward phase.
  std::map<int, double> backward_start;
  for (const Span& span : spans) {
    if (span.category != "backward") continue;
    CHECK(span.start >= backward.start);
    CHECK(span.end <= backward.end);
    for (int index : {0, 2, 4})
      if (span.name == fmt::format("{} (Linear)", index)) backward_start[index] = span.start;
  }
  REQUIRE(backward_start.size() == 3);
  // One backward span per module: the model, three Linears, two Tanhs (a span lost to two
  // tensors mistaken for one would be missing).
  int backward_spans = 0;
  for (const Span& span : spans) backward_spans += span.category == "backward";
  CHECK(backward_spans == 6);
  CHECK(backward_start[4] < backward_start[2]);
  CHECK(backward_start[2] < backward_start[0]);
  // One reduce-scatter per parameter group (weight and bias of 3 Linears: 3 groups), during
  // backward, each counting the group's padded bytes; all-gathers carry bandwidths.
  int reduce_scatters = 0, all_gathers = 0;
  for (const Span& span : spans) {
    if (span.category != "collective") continue;
    if (span.name == "reduce_scatter") {
      reduce_scatters += 1;
      CHECK(span.start >= backward.start);
      CHECK(span.end <= backward.end);
    }
    if (span.name == "all_gather") {
      all_gathers += 1;
      CHECK(span.args.at("message_bytes").get<int64_t>() > 0);
      CHECK(span.args.contains("busbw_GBps"));
    }
  }
  CHECK(reduce_scatters == 3);
  CHECK(all_gathers >= 6);  // each Linear before its forward and again before its backward
  world.barrier();          // every rank has read its file
  if (std::getenv("ZT_TRACE_DIR") == nullptr && world.rank() == 0) std::filesystem::remove_all(dir);
}

TEST_CASE("tracing off records nothing and writes no file") {
  MpiCommunicator& world = test_world();
  std::string dir = shared_trace_dir() + "_off";
  Config config = traced_config(world.size(), dir, 3);
  config.observe.trace.enabled = false;
  {
    ProcessGrid grid = ProcessGrid::data_parallel(world);
    Engine engine(config, make_mlp(), grid.data_group());
    train_three_steps(engine);
  }
  CHECK(observe::TraceRecorder::instance().events().empty());
  CHECK(!std::filesystem::exists(dir));
}

}  // namespace
}  // namespace zt::dist

namespace zt::dist {
namespace {

TEST_CASE("an unwritable trace folder fails the engine's construction on every rank, naming it") {
  comm::MpiCommunicator& world = testing::test_world();
  // Rank 1 alone cannot write (a folder under a file) where there is a rank 1: the others must
  // fail too rather than wait for it in the first collective.
  std::string dir = world.rank() == std::min(1, world.size() - 1) ? "/proc/version/traces"
                                                                  : "/tmp/zt_trace_unused";
  comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
  std::string error;
  try {
    Engine engine(traced_config(world.size(), dir, 3), testing::make_mlp(), grid.data_group());
  } catch (const std::exception& failure) {
    error = failure.what();
  }
  if (world.rank() == std::min(1, world.size() - 1)) {
    CHECK(error.find("trace.output_path: cannot write in the folder /proc/version/traces") !=
          std::string::npos);
  } else {
    CHECK(error == "observability outputs: failed on another rank");
  }
  CHECK(!observe::TraceRecorder::recording());
  world.barrier();
  if (dir.starts_with("/tmp/")) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace zt::dist

namespace zt::dist {
namespace {

TEST_CASE("a trace with offload_optimizer nvme holds each sub-group's swap in, update, swap out") {
  comm::MpiCommunicator& world = testing::test_world();
  std::string dir = shared_trace_dir() + "_nvme";
  if (world.rank() == 0) std::filesystem::create_directories(dir + "/swap");
  world.barrier();
  std::string text = fmt::format(R"({{
    "train_batch_size": {},
    "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "zero_optimization": {{"stage": 3, "stage3_param_persistence_threshold": 0,
                          "sub_group_size": 1000,
                          "offload_optimizer": {{"device": "nvme", "nvme_path": "{}/swap"}}}},
    "trace": {{"enabled": true, "output_path": "{}/traces", "steps": "2:2"}}
  }})",
                                 testing::kGlobalBatch, dir, dir);
  {
    comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
    Engine engine(parse_config(text, "test_config", world.size(), nullptr), testing::make_mlp(),
                  grid.data_group());
    train_three_steps(engine);
  }
  std::vector<Span> spans =
      read_spans(fmt::format("{}/traces/trace_rank{}.json", dir, world.rank()), world.rank());
  const Span& update = find_span(spans, "optimizer update");
  int sub_groups = 0;
  for (int s = 0;; ++s) {
    const Span* swap_in = nullptr;
    const Span* step = nullptr;
    for (const Span& span : spans) {
      if (span.name == fmt::format("swap in sub-group {}", s)) swap_in = &span;
      if (span.name == fmt::format("optimizer sub-group {}", s)) step = &span;
    }
    if (step == nullptr) break;
    sub_groups += 1;
    REQUIRE(swap_in != nullptr);
    CHECK(swap_in->end <= step->start);
    CHECK(step->start >= update.start);
    CHECK(step->end <= update.end);
  }
  CHECK(sub_groups >= 2);  // 26,122 parameters over N <= 8 ranks, in sub-groups of 1,000
  world.barrier();
  if (world.rank() == 0) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace zt::dist
