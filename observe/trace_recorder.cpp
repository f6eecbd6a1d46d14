// The trace recorder's session, its step window and the trace-event JSON it writes (one
// process per rank, one thread per lane of a track, "X" complete events).
#include "observe/trace_recorder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <utility>

namespace zt::observe {

std::string_view trace_track_name(TraceTrack track) {
  static constexpr std::string_view kNames[kTraceTrackCount] = {
      "compute", "communication", "zero3 parameters", "optimizer", "offload"};
  return kNames[size_t(track)];
}

TraceRecorder& TraceRecorder::instance() {
  static TraceRecorder recorder;
  return recorder;
}

void TraceRecorder::configure(const TraceOptions& options) {
  if (options.output_dir.empty()) throw std::invalid_argument("trace: output_path is empty");
  if (options.first_step < 1 || options.last_step < options.first_step)
    throw std::invalid_argument(fmt::format("trace: steps {}:{}: expected A:B with 1 <= A <= B",
                                            options.first_step, options.last_step));
  std::lock_guard lock(mutex_);
  recording_ = false;
  options_ = options;
  configured_ = true;
  events_.clear();
}

void TraceRecorder::begin_step(int64_t step) {
  if (!configured_) return;
  recording_ = step >= options_.first_step && step <= options_.last_step;
}

std::string TraceRecorder::end_step(int64_t step) {
  if (!configured_ || step != options_.last_step) return "";
  recording_ = false;
  return flush();
}

std::string TraceRecorder::flush() {
  std::vector<TraceEvent> recorded;
  {
    std::lock_guard lock(mutex_);
    if (!configured_ || events_.empty()) return "";
    recorded = std::move(events_);
    events_.clear();
  }
  namespace fs = std::filesystem;
  fs::create_directories(options_.output_dir);
  fs::path path = fs::path(options_.output_dir) / fmt::format("trace_rank{}.json", options_.rank);
  fs::path temporary = path;
  temporary += ".tmp";
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    file << to_json(recorded, options_.rank, options_.world_size);
    if (!file.flush())
      throw std::runtime_error(fmt::format("trace: cannot write {}", temporary.string()));
  }
  fs::rename(temporary, path);
  return path.string();
}

void TraceRecorder::reset() {
  std::lock_guard lock(mutex_);
  recording_ = false;
  configured_ = false;
  events_.clear();
}

double TraceRecorder::to_us(std::chrono::steady_clock::time_point time) const {
  return std::chrono::duration<double, std::micro>(time - origin_).count();
}

double TraceRecorder::now_us() const {
  return to_us(std::chrono::steady_clock::now());
}

void TraceRecorder::add(TraceEvent event) {
  std::lock_guard lock(mutex_);
  events_.push_back(std::move(event));
}

std::vector<TraceEvent> TraceRecorder::events() const {
  std::lock_guard lock(mutex_);
  return events_;
}

namespace {

// Lane of each event within its track: the first lane where it nests inside what is open there
// (a stack of end times per lane), in start order, an enclosing span before what it encloses.
std::vector<int> assign_lanes(const std::vector<TraceEvent>& events, std::vector<size_t>& order) {
  order.resize(events.size());
  for (size_t i = 0; i < events.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (events[a].start_us != events[b].start_us) return events[a].start_us < events[b].start_us;
    return events[a].duration_us > events[b].duration_us;
  });
  std::vector<int> lane_of(events.size(), 0);
  std::vector<std::vector<std::vector<double>>> open_ends(kTraceTrackCount);
  for (size_t index : order) {
    const TraceEvent& event = events[index];
    double end = event.start_us + event.duration_us;
    auto& lanes = open_ends[size_t(event.track)];
    size_t lane = 0;
    for (;; ++lane) {
      if (lane == lanes.size()) lanes.emplace_back();
      std::vector<double>& stack = lanes[lane];
      while (!stack.empty() && stack.back() <= event.start_us) stack.pop_back();
      if (stack.empty() || end <= stack.back()) break;
    }
    lanes[lane].push_back(end);
    lane_of[index] = int(lane);
  }
  return lane_of;
}

// Thread ids: 100 * (track + 1) + lane, so a track's lanes sort together.
int thread_id(TraceTrack track, int lane) {
  return 100 * (int(track) + 1) + lane;
}

}  // namespace

std::string TraceRecorder::to_json(const std::vector<TraceEvent>& events, int rank,
                                   int world_size) {
  using nlohmann::json;
  std::vector<size_t> order;
  std::vector<int> lanes = assign_lanes(events, order);
  json trace_events = json::array();
  trace_events.push_back({{"ph", "M"},
                          {"name", "process_name"},
                          {"pid", rank},
                          {"args", {{"name", fmt::format("rank {}", rank)}}}});
  trace_events.push_back({{"ph", "M"},
                          {"name", "process_sort_index"},
                          {"pid", rank},
                          {"args", {{"sort_index", rank}}}});
  std::vector<std::pair<int, std::string>> threads;
  for (size_t index : order) {
    const TraceEvent& event = events[index];
    int tid = thread_id(event.track, lanes[index]);
    std::string thread_name(trace_track_name(event.track));
    if (lanes[index] > 0) thread_name += fmt::format(" {}", lanes[index] + 1);
    threads.emplace_back(tid, thread_name);
    json entry = {{"ph", "X"},  {"name", event.name},   {"cat", event.category},   {"pid", rank},
                  {"tid", tid}, {"ts", event.start_us}, {"dur", event.duration_us}};
    if (!event.args.is_null()) entry["args"] = event.args;
    trace_events.push_back(std::move(entry));
  }
  std::sort(threads.begin(), threads.end());
  threads.erase(std::unique(threads.begin(), threads.end()), threads.end());
  for (const auto& [tid, name] : threads) {
    trace_events.push_back({{"ph", "M"},
                            {"name", "thread_name"},
                            {"pid", rank},
                            {"tid", tid},
                            {"args", {{"name", name}}}});
    trace_events.push_back({{"ph", "M"},
                            {"name", "thread_sort_index"},
                            {"pid", rank},
                            {"tid", tid},
                            {"args", {{"sort_index", tid}}}});
  }
  json document = {{"traceEvents", std::move(trace_events)},
                   {"displayTimeUnit", "ms"},
                   {"otherData", {{"rank", rank}, {"world_size", world_size}}}};
  return document.dump() + "\n";
}

void TraceSpan::start(std::string_view name, std::string_view category, TraceTrack track) {
  active_ = true;
  event_.name = name;
  event_.category = category;
  event_.track = track;
  event_.start_us = TraceRecorder::instance().now_us();
}

void TraceSpan::finish() {
  TraceRecorder& recorder = TraceRecorder::instance();
  event_.duration_us = recorder.now_us() - event_.start_us;
  recorder.add(std::move(event_));
  active_ = false;
}

}  // namespace zt::observe
