// The comms logger's records, its verbose lines and its summary table.
#include "observe/comms_logger.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace zt::observe {

namespace {

constexpr double kGigabits = 1e9 / 8.0;  // bytes per second in one Gbps

bool is_kind_name(std::string_view name) {
  for (size_t kind = 0; kind < comm::kCollectiveKindCount; ++kind) {
    if (comm::collective_kind_name(comm::CollectiveKind(kind)) == name) return true;
  }
  return false;
}

}  // namespace

CommsLogger::CommsLogger(CommsLoggerConfig config, int rank)
    : config_(std::move(config)), rank_(rank) {
  for (const std::string& op : config_.prof_ops) {
    if (!is_kind_name(op))
      throw std::invalid_argument(
          fmt::format("comms_logger.prof_ops: unknown collective \"{}\" (expected all_reduce, "
                      "reduce_scatter, all_gather, broadcast, reduce, barrier, send or recv)",
                      op));
  }
}

bool CommsLogger::profiled(comm::CollectiveKind kind) const {
  if (config_.prof_all) return true;
  std::string_view name = comm::collective_kind_name(kind);
  return std::find(config_.prof_ops.begin(), config_.prof_ops.end(), name) !=
         config_.prof_ops.end();
}

void CommsLogger::on_collective(const CollectiveRecord& record) {
  if (!profiled(record.kind)) return;
  double seconds = record.seconds();
  double algbw = algorithm_bandwidth(record.message_bytes, seconds);
  double busbw = bus_bandwidth(record.kind, record.message_bytes, seconds, record.group_size);
  std::string name(comm::collective_kind_name(record.kind));
  if (config_.debug) name += " | " + phase_;
  SizeEntry& entry = records_[name][record.message_bytes];
  entry.count += 1;
  entry.total_seconds += seconds;
  entry.algbw_sum += algbw;
  entry.busbw_sum += busbw;
  entry.payload_bytes += record.payload_bytes;
  comm::CollectiveCounter& total = totals_[size_t(record.kind)];
  total.calls += 1;
  total.payload_bytes += record.payload_bytes;
  total.buffer_bytes += record.buffer_bytes;
  total.seconds += seconds;
  if (config_.verbose && rank_ == 0) {
    fmt::print(
        "comm op: {} | time (ms): {:.3f} | msg size: {} | algbw (Gbps): {:.3f} | busbw (Gbps): "
        "{:.3f}\n",
        name, 1e3 * seconds, size_text(record.message_bytes), algbw / kGigabits, busbw / kGigabits);
    std::fflush(stdout);
  }
}

std::string CommsLogger::summary() const {
  std::string text = fmt::format("{:<24}{:<16}{:<10}{:<20}{:<18}{:<18}{:<18}\n", "Comm. Op",
                                 "Message Size", "Count", "Total Latency(ms)", "Avg Latency(ms)",
                                 "algbw_avg (Gbps)", "busbw_avg (Gbps)");
  for (const auto& [name, sizes] : records_) {
    text += name + "\n";
    for (const auto& [bytes, entry] : sizes) {
      double count = double(entry.count);
      text += fmt::format("{:<24}{:<16}{:<10}{:<20.3f}{:<18.3f}{:<18.3f}{:<18.3f}\n", "",
                          size_text(bytes), entry.count, 1e3 * entry.total_seconds,
                          1e3 * entry.total_seconds / count, entry.algbw_sum / count / kGigabits,
                          entry.busbw_sum / count / kGigabits);
    }
  }
  return text;
}

void CommsLogger::reset() {
  records_.clear();
  totals_ = {};
}

std::string CommsLogger::size_text(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KB", "MB", "GB", "TB"};
  double value = double(bytes);
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    unit += 1;
  }
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

}  // namespace zt::observe
