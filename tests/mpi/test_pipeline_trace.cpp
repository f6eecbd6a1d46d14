// The pipeline engine's trace: with the trace block on, every rank of a pipeline (one stage per
// rank) writes trace_rank<world rank>.json whose instruction spans, in time order, are exactly
// its stage's schedule (kind, micro-batch, chunk), 1F1B and interleaved, with the stage in each
// span's args; steps outside the window write nothing, without the block nothing is written,
// and a folder one rank cannot write fails the construction on every rank.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "nn/linear.h"
#include "pipeline/instruction_trace.h"
#include "pipeline/pipeline_engine.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::pipeline {
namespace {

using nlohmann::json;
using testing::test_world;

// One folder for every rank: rank 0's choice, broadcast.
std::string shared_dir(const std::string& what) {
  Tensor pid = full({1}, double(getpid()), {.dtype = DType::i64});
  test_world().broadcast(pid, 0);
  return (std::filesystem::temp_directory_path() /
          fmt::format("zt_pipeline_{}_{}", what, int64_t(pid.item())))
      .string();
}

dist::Config traced_config(const std::string& dir, int chunks, bool traced) {
  std::string text = fmt::format(R"({{
    "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 4, "steps_per_print": 0,
    "optimizer": {{"type": "SGD", "params": {{"lr": 0.1}}}},
    "pipeline": {{"partition": "uniform", "schedule": "{}", "virtual_stages": {}}},
    "trace": {{"enabled": {}, "output_path": "{}", "steps": "2:2"}}
  }})",
                                 chunks > 1 ? "interleaved" : "1f1b", chunks, traced, dir);
  return dist::parse_config(text, "pipeline_trace", 1, nullptr);
}

// Trains 3 batches of a chain of Linear(4, 4) layers, one per virtual stage.
void train_pipeline(const dist::Config& config, int chunks) {
  comm::ProcessGrid grid(test_world(), {.data = 1, .pipeline = test_world().size()});
  LayerSpecs specs;
  for (int layer = 0; layer < test_world().size() * chunks; ++layer)
    specs.push_back(
        {.type_name = "Linear", .build = [] { return std::make_shared<nn::Linear>(4, 4); }});
  PipelineEngine engine(
      config, specs, [](const Tensor& out, const Tensor& labels) { return mse_loss(out, labels); },
      zeros({2, 4}), grid);
  for (int batch = 0; batch < 3; ++batch)
    engine.train_batch([] { return MicroBatch{ones({2, 4}), zeros({2, 4})}; });
}

struct TracedInstruction {
  std::string name;
  int stage = -1, micro_batch = -1, chunk = -1;
  double start = 0;
};

std::vector<TracedInstruction> read_instructions(const std::string& path) {
  std::ifstream file(path);
  REQUIRE(file.good());
  json trace = json::parse(file);
  std::vector<TracedInstruction> spans;
  for (const json& event : trace.at("traceEvents")) {
    if (event.at("ph") != "X" || event.at("cat") != "pipeline") continue;
    const json& args = event.at("args");
    spans.push_back({event.at("name"), args.at("stage"), args.at("micro_batch"), args.at("chunk"),
                     event.at("ts").get<double>()});
  }
  std::stable_sort(spans.begin(), spans.end(),
                   [](const auto& a, const auto& b) { return a.start < b.start; });
  return spans;
}

}  // namespace

TEST_CASE("pipeline trace: each rank's instruction spans are its stage's schedule") {
  const int ranks = test_world().size();
  for (int chunks : {1, 2}) {
    // Interleaving takes micro-batches p at a time (4 of them here).
    if (chunks > 1 && (ranks < 2 || 4 % ranks != 0)) continue;
    CAPTURE(chunks);
    const std::string dir = shared_dir("trace");
    train_pipeline(traced_config(dir, chunks, true), chunks);
    test_world().barrier();
    const int stage = test_world().rank();
    std::vector<TracedInstruction> spans =
        read_instructions(fmt::format("{}/trace_rank{}.json", dir, stage));
    // The window is step 2 only: one batch, every instruction once.
    const std::vector<Instruction> schedule =
        train_schedule({.stages = ranks, .micro_batches = 4, .chunks = chunks}, stage);
    REQUIRE(spans.size() == schedule.size());
    for (size_t i = 0; i < schedule.size(); ++i) {
      CAPTURE(i);
      CHECK(spans[i].name == instruction_span_name(schedule[i].kind));
      CHECK(spans[i].micro_batch == schedule[i].micro_batch);
      CHECK(spans[i].chunk == schedule[i].chunk);
      CHECK(spans[i].stage == stage);
    }
    test_world().barrier();
    if (test_world().rank() == 0) std::filesystem::remove_all(dir);
  }
}

TEST_CASE("pipeline trace: without the trace block nothing is written") {
  const std::string dir = shared_dir("untraced");
  train_pipeline(traced_config(dir, 1, false), 1);
  test_world().barrier();
  CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("pipeline trace: an unwritable trace folder fails construction on every rank") {
  // Rank 1 alone (where there is one) cannot write: a folder under a file.
  const int bad_rank = std::min(1, test_world().size() - 1);
  const bool bad = test_world().rank() == bad_rank;
  const std::string shared = shared_dir("unused");  // every rank takes part in its broadcast
  const std::string dir = bad ? "/proc/version/traces" : shared;
  std::string error;
  try {
    train_pipeline(traced_config(dir, 1, true), 1);
  } catch (const std::exception& failure) {
    error = failure.what();
  }
  if (bad) {
    CHECK(error.find("trace.output_path: cannot write in the folder /proc/version/traces") !=
          std::string::npos);
  } else {
    CHECK(error == "pipeline: opening the trace folder failed on another rank");
  }
  CHECK_FALSE(observe::TraceRecorder::instance().configured());
  test_world().barrier();
  if (!bad) std::filesystem::remove_all(dir);
}

}  // namespace zt::pipeline
