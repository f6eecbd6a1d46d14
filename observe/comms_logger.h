// CommsLogger: DeepSpeed's comms_logger for the engine's data-parallel collectives. It keeps,
// per collective kind and message size, the count, latency and the algorithm and bus
// bandwidths (observe/collective_record.h), prints a line per call when verbose, and a summary
// table in the layout of DeepSpeed's log_summary. prof_all off limits it to prof_ops; debug
// files each record under the engine phase it happened in ("all_gather | forward").
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "observe/collective_record.h"
#include "observe/observe_config.h"

namespace zt::observe {

class CommsLogger final : public CollectiveListener {
 public:
  // Checks the names of prof_ops (std::invalid_argument naming a wrong one).
  CommsLogger(CommsLoggerConfig config, int rank);

  void on_collective(const CollectiveRecord& record) override;
  void on_reset_stats() override { reset(); }
  // The engine phase that debug records carry.
  void set_phase(std::string_view phase) { phase_ = phase; }

  struct SizeEntry {
    int64_t count = 0;
    double total_seconds = 0;
    double algbw_sum = 0, busbw_sum = 0;  // bytes per second, summed over calls
    int64_t payload_bytes = 0;
  };
  // By record name (the kind, with " | phase" under debug), then message bytes.
  using Records = std::map<std::string, std::map<int64_t, SizeEntry>>;
  const Records& records() const { return records_; }
  // Totals per kind of what was logged, comparable with comm::CommStats.
  int64_t calls(comm::CollectiveKind kind) const { return totals_[size_t(kind)].calls; }
  int64_t payload_bytes(comm::CollectiveKind kind) const {
    return totals_[size_t(kind)].payload_bytes;
  }
  int64_t buffer_bytes(comm::CollectiveKind kind) const {
    return totals_[size_t(kind)].buffer_bytes;
  }
  // The table: per name and message size, count, total and mean latency, mean algbw and busbw
  // in Gbps (10^9 bits per second, as DeepSpeed prints them).
  std::string summary() const;
  void reset();

  // "4.0 KB": bytes in units of 1024, as DeepSpeed's convert_size.
  static std::string size_text(int64_t bytes);

 private:
  bool profiled(comm::CollectiveKind kind) const;

  CommsLoggerConfig config_;
  int rank_;
  std::string phase_ = "other";
  Records records_;
  std::array<comm::CollectiveCounter, comm::kCollectiveKindCount> totals_{};
};

}  // namespace zt::observe
