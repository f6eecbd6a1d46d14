// TraceRecorder: spans of one rank in Chrome's trace-event JSON (what chrome://tracing and
// Perfetto open), for the training steps a `trace` config block or --trace chooses. Off, it
// costs one branch per span site (TraceRecorder::recording(), a plain static bool).
// Spans go to tracks by what they are (compute, communication, ZeRO-3 parameters, optimizer,
// offload); spans of one track that overlap in time (collectives in flight together) are laid
// out on extra lanes of that track when the file is written, so every lane nests properly.
// Invariants: times are microseconds of steady_clock (one clock for every rank of a host, so
// ranks line up when scripts/merge-traces joins their files); the
// file is written to a temporary name and renamed; the recorder is one per process.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace zt::observe {

enum class TraceTrack : uint8_t { compute, communication, parameters, optimizer, offload };
inline constexpr int kTraceTrackCount = 5;
std::string_view trace_track_name(TraceTrack track);

struct TraceEvent {
  std::string name;
  std::string category;  // "forward", "backward", "collective", "gather", "optimizer", ...
  TraceTrack track = TraceTrack::compute;
  double start_us = 0, duration_us = 0;
  nlohmann::json args;  // an object shown in the span's details, or null
};

struct TraceOptions {
  std::string output_dir;  // one file per rank: DIR/trace_rank<R>.json
  int64_t first_step = 1;  // training steps counted from 1, as the step log prints them
  int64_t last_step = 1;
  int rank = 0;
  int world_size = 1;
};

class TraceRecorder {
 public:
  static TraceRecorder& instance();
  // The one branch every span site takes.
  static bool recording() { return recording_; }

  // Starts a session (clears what an earlier one kept); nothing is recorded until a step of the
  // window begins.
  void configure(const TraceOptions& options);
  bool configured() const { return configured_; }
  // The engine calls these around each training step (`step` counted from 1).
  void begin_step(int64_t step);
  // Ends the step; after the window's last step writes the file and returns its path (else "").
  std::string end_step(int64_t step);
  // Writes what was recorded (a partial window, at shutdown); "" when nothing was.
  std::string flush();
  // Stops recording and forgets the session (tests start several).
  void reset();

  double now_us() const;
  double to_us(std::chrono::steady_clock::time_point time) const;
  void add(TraceEvent event);
  std::vector<TraceEvent> events() const;
  // The trace-event JSON of `events` for `rank`, lanes assigned (exposed for tests).
  static std::string to_json(const std::vector<TraceEvent>& events, int rank, int world_size);

 private:
  static inline bool recording_ = false;
  mutable std::mutex mutex_;
  bool configured_ = false;
  TraceOptions options_;
  std::chrono::steady_clock::time_point origin_{};
  std::vector<TraceEvent> events_;
};

// A span on `track` from construction to destruction, recorded when the recorder was recording
// at construction. Its args may be set before it ends.
class TraceSpan {
 public:
  TraceSpan(std::string_view name, std::string_view category, TraceTrack track) {
    if (TraceRecorder::recording()) start(name, category, track);
  }
  ~TraceSpan() {
    if (active_) finish();
  }
  TraceSpan(const TraceSpan&) = delete;
  TraceSpan& operator=(const TraceSpan&) = delete;
  bool active() const { return active_; }
  // Ends the span now (before its scope does).
  void end() {
    if (active_) finish();
  }
  void set_args(nlohmann::json args) {
    if (active_) event_.args = std::move(args);
  }

 private:
  void start(std::string_view name, std::string_view category, TraceTrack track);
  void finish();
  bool active_ = false;
  TraceEvent event_;
};

}  // namespace zt::observe
