// The trace recorder without an engine: the step window, the trace-event JSON (valid, one
// process, lanes for overlapping spans so that every lane nests), the file written whole, and
// the comms logger's records, filters and table on synthetic collectives.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "observe/comms_logger.h"
#include "observe/trace_recorder.h"

using namespace zt;
using namespace zt::observe;
using nlohmann::json;

TEST_CASE("trace recorder: records only inside the step window and writes one valid file") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / "zt_trace_recorder_unit";
  fs::remove_all(dir);
  TraceRecorder& recorder = TraceRecorder::instance();
  recorder.configure({.output_dir = dir.string(), .first_step = 2, .last_step = 3, .rank = 5});
  for (int64_t step = 1; step <= 4; ++step) {
    recorder.begin_step(step);
    { TraceSpan span("work", "phase", TraceTrack::compute); }
    std::string path = recorder.end_step(step);
    CHECK(path.empty() == (step != 3));
  }
  CHECK(!TraceRecorder::recording());
  std::ifstream file(dir / "trace_rank5.json");
  json trace = json::parse(file);
  int spans = 0;
  for (const json& event : trace["traceEvents"]) {
    CHECK(event["pid"] == 5);
    spans += event["ph"] == "X";
  }
  CHECK(spans == 2);  // steps 2 and 3
  CHECK(!fs::exists(dir / "trace_rank5.json.tmp"));
  recorder.reset();
  fs::remove_all(dir);
}

TEST_CASE("trace recorder: overlapping spans of one track go to separate lanes that nest") {
  std::vector<TraceEvent> events = {
      {.name = "outer", .track = TraceTrack::compute, .start_us = 0, .duration_us = 10},
      {.name = "inner", .track = TraceTrack::compute, .start_us = 2, .duration_us = 3},
      {.name = "gather a", .track = TraceTrack::communication, .start_us = 0, .duration_us = 6},
      {.name = "gather b", .track = TraceTrack::communication, .start_us = 4, .duration_us = 6},
      {.name = "gather c", .track = TraceTrack::communication, .start_us = 7, .duration_us = 1}};
  json trace = json::parse(TraceRecorder::to_json(events, 0, 1));
  std::map<std::string, int> tid;
  std::set<std::string> thread_names;
  for (const json& event : trace["traceEvents"]) {
    if (event["ph"] == "X") tid[event["name"]] = event["tid"];
    if (event["name"] == "thread_name") thread_names.insert(event["args"]["name"]);
  }
  CHECK(tid["outer"] == tid["inner"]);        // nested: one lane
  CHECK(tid["gather a"] != tid["gather b"]);  // overlapping without nesting: two lanes
  CHECK(tid["gather c"] == tid["gather a"]);  // after a ended, back on the first lane
  CHECK(thread_names == std::set<std::string>{"compute", "communication", "communication 2"});
}

TEST_CASE("comms logger: records by kind and size, prof_ops, debug phases, the table") {
  using comm::CollectiveKind;
  auto record = [](CollectiveKind kind, int64_t bytes, double milliseconds) {
    CollectiveRecord done{.kind = kind,
                          .message_bytes = bytes,
                          .buffer_bytes = bytes,
                          .payload_bytes = comm::ring_payload_bytes(kind, bytes, 4),
                          .group_size = 4};
    done.end = done.start + std::chrono::microseconds(int64_t(milliseconds * 1000));
    return done;
  };
  CommsLogger logger({.enabled = true, .debug = true}, 0);
  logger.set_phase("backward");
  logger.on_collective(record(CollectiveKind::all_reduce, 4096, 2.0));
  logger.on_collective(record(CollectiveKind::all_reduce, 4096, 2.0));
  logger.set_phase("step");
  logger.on_collective(record(CollectiveKind::all_gather, 1 << 20, 1.0));
  const auto& entry = logger.records().at("all_reduce | backward").at(4096);
  CHECK(entry.count == 2);
  CHECK(entry.total_seconds == doctest::Approx(0.004));
  // 4096 B in 2 ms: algbw 2.048 MB/s; busbw 1.5x that on 4 ranks; the payload 2 x 6144.
  CHECK(entry.algbw_sum == doctest::Approx(2 * 4096 / 0.002));
  CHECK(entry.busbw_sum == doctest::Approx(2 * 4096 / 0.002 * 1.5));
  CHECK(entry.payload_bytes == 2 * 6144);
  CHECK(logger.calls(CollectiveKind::all_gather) == 1);
  std::string table = logger.summary();
  CHECK(table.find("all_gather | step") != std::string::npos);
  CHECK(table.find("1.0 MB") != std::string::npos);
  CHECK(table.find("4.0 KB") != std::string::npos);

  CommsLogger only_gathers({.enabled = true, .prof_all = false, .prof_ops = {"all_gather"}}, 0);
  only_gathers.on_collective(record(CollectiveKind::all_reduce, 4096, 1.0));
  only_gathers.on_collective(record(CollectiveKind::all_gather, 4096, 1.0));
  CHECK(only_gathers.calls(CollectiveKind::all_reduce) == 0);
  CHECK(only_gathers.calls(CollectiveKind::all_gather) == 1);
  CHECK_THROWS_WITH_AS(CommsLogger({.enabled = true, .prof_ops = {"allgather"}}, 0),
                       doctest::Contains("comms_logger.prof_ops: unknown collective \"allgather\""),
                       std::invalid_argument);
}
