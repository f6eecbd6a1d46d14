// One finished collective as the observers see it (the trace, the comms logger), with the
// bandwidths of NCCL's tests: algbw = B / t, where B is the message (the tensor of an
// all_reduce, broadcast, reduce, send or recv; the full N-slice buffer of an all_gather or a
// reduce_scatter), and busbw = algbw * the ring factor, 2(N-1)/N for all_reduce, (N-1)/N for
// all_gather and reduce_scatter, 1 for the rest. So busbw * t is the payload that
// comm::ring_payload_bytes counts, and busbw compares with the link's own bandwidth.
#pragma once

#include <chrono>
#include <cstdint>

#include "comm/communicator.h"

namespace zt::observe {

struct CollectiveRecord {
  comm::CollectiveKind kind = comm::CollectiveKind::barrier;
  int64_t message_bytes = 0;  // B, as above
  int64_t buffer_bytes = 0;   // the input side, as comm::CollectiveCounter counts it
  int64_t payload_bytes = 0;  // comm::ring_payload_bytes
  int group_size = 1;
  std::chrono::steady_clock::time_point start, end;

  double seconds() const { return std::chrono::duration<double>(end - start).count(); }
};

// The ring factor above: busbw / algbw.
double bus_bandwidth_factor(comm::CollectiveKind kind, int group_size);
// Bytes per second; 0 for an empty message or a zero duration.
double algorithm_bandwidth(int64_t message_bytes, double seconds);
double bus_bandwidth(comm::CollectiveKind kind, int64_t message_bytes, double seconds,
                     int group_size);

// Receives every collective an ObservedCommunicator finishes.
class CollectiveListener {
 public:
  virtual ~CollectiveListener() = default;
  virtual void on_collective(const CollectiveRecord& record) = 0;
  // The communicator's counters were reset: counts kept to match them restart too.
  virtual void on_reset_stats() {}
};

}  // namespace zt::observe
