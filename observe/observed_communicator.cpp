// The observing decorator's calls: each starts the wrapped call and reports the collective once
// it is seen done (wait, a successful test or wait_for, or the Work's destruction).
#include "observe/observed_communicator.h"

#include <utility>

#include "observe/trace_recorder.h"

namespace zt::observe {

using comm::CollectiveKind;
using Clock = std::chrono::steady_clock;

double bus_bandwidth_factor(CollectiveKind kind, int group_size) {
  double ranks = group_size;
  switch (kind) {
    case CollectiveKind::all_reduce:
      return 2.0 * (ranks - 1.0) / ranks;
    case CollectiveKind::reduce_scatter:
    case CollectiveKind::all_gather:
      return (ranks - 1.0) / ranks;
    default:
      return 1.0;
  }
}

double algorithm_bandwidth(int64_t message_bytes, double seconds) {
  return seconds > 0.0 ? double(message_bytes) / seconds : 0.0;
}

double bus_bandwidth(CollectiveKind kind, int64_t message_bytes, double seconds, int group_size) {
  return algorithm_bandwidth(message_bytes, seconds) * bus_bandwidth_factor(kind, group_size);
}

namespace {

// Reports its collective when it is first seen finished.
class ObservedWork final : public comm::Work {
 public:
  ObservedWork(std::unique_ptr<comm::Work> inner, CollectiveRecord record,
               std::function<void(CollectiveRecord)> report)
      : inner_(std::move(inner)), record_(record), report_(std::move(report)) {}
  ~ObservedWork() override {
    if (reported_) return;
    inner_.reset();  // waits for the collective (or ends the job, as the wrapped Work does)
    finished();
  }
  void wait() override {
    inner_->wait();
    finished();
  }
  bool test() override {
    bool done = inner_->test();
    if (done) finished();
    return done;
  }
  bool wait_for(double timeout_seconds) override {
    bool done = inner_->wait_for(timeout_seconds);
    if (done) finished();
    return done;
  }

 private:
  void finished() {
    if (reported_) return;
    reported_ = true;
    record_.end = Clock::now();
    report_(record_);
  }
  std::unique_ptr<comm::Work> inner_;
  CollectiveRecord record_;
  std::function<void(CollectiveRecord)> report_;
  bool reported_ = false;
};

}  // namespace

ObservedCommunicator::ObservedCommunicator(comm::Communicator& inner, CollectiveListener* listener)
    : inner_(inner), listener_(listener) {}

CollectiveRecord ObservedCommunicator::record_of(CollectiveKind kind, int64_t message_bytes,
                                                 int64_t buffer_bytes) const {
  CollectiveRecord record;
  record.kind = kind;
  record.message_bytes = message_bytes;
  record.buffer_bytes = buffer_bytes;
  record.group_size = inner_.size();
  record.payload_bytes = comm::ring_payload_bytes(kind, message_bytes, record.group_size);
  record.start = Clock::now();
  return record;
}

std::unique_ptr<comm::Work> ObservedCommunicator::observe(std::unique_ptr<comm::Work> work,
                                                          CollectiveRecord record) {
  return std::make_unique<ObservedWork>(std::move(work), record,
                                        [this](CollectiveRecord done) { report(done); });
}

void ObservedCommunicator::report(CollectiveRecord record) const {
  if (listener_ != nullptr) listener_->on_collective(record);
  if (!TraceRecorder::recording()) return;
  TraceRecorder& recorder = TraceRecorder::instance();
  double seconds = record.seconds();
  constexpr double kGiga = 1e9;
  recorder.add(TraceEvent{
      .name = std::string(comm::collective_kind_name(record.kind)),
      .category = "collective",
      .track = TraceTrack::communication,
      .start_us = recorder.to_us(record.start),
      .duration_us = recorder.to_us(record.end) - recorder.to_us(record.start),
      .args = {
          {"message_bytes", record.message_bytes},
          {"payload_bytes", record.payload_bytes},
          {"ranks", record.group_size},
          {"algbw_GBps", algorithm_bandwidth(record.message_bytes, seconds) / kGiga},
          {"busbw_GBps",
           bus_bandwidth(record.kind, record.message_bytes, seconds, record.group_size) / kGiga}}});
}

std::unique_ptr<comm::Work> ObservedCommunicator::all_reduce_async(const Tensor& tensor,
                                                                   comm::ReduceOperation op) {
  CollectiveRecord record =
      record_of(CollectiveKind::all_reduce, int64_t(tensor.nbytes()), int64_t(tensor.nbytes()));
  return observe(inner_.all_reduce_async(tensor, op), record);
}

std::unique_ptr<comm::Work> ObservedCommunicator::reduce_scatter_async(const Tensor& input,
                                                                       const Tensor& output,
                                                                       comm::ReduceOperation op) {
  CollectiveRecord record =
      record_of(CollectiveKind::reduce_scatter, int64_t(input.nbytes()), int64_t(input.nbytes()));
  return observe(inner_.reduce_scatter_async(input, output, op), record);
}

std::unique_ptr<comm::Work> ObservedCommunicator::all_gather_async(const Tensor& input,
                                                                   const Tensor& output) {
  CollectiveRecord record =
      record_of(CollectiveKind::all_gather, int64_t(output.nbytes()), int64_t(input.nbytes()));
  return observe(inner_.all_gather_async(input, output), record);
}

std::unique_ptr<comm::Work> ObservedCommunicator::broadcast_async(const Tensor& tensor, int root) {
  CollectiveRecord record =
      record_of(CollectiveKind::broadcast, int64_t(tensor.nbytes()), int64_t(tensor.nbytes()));
  return observe(inner_.broadcast_async(tensor, root), record);
}

void ObservedCommunicator::reduce(const Tensor& tensor, int root, comm::ReduceOperation op) {
  CollectiveRecord record =
      record_of(CollectiveKind::reduce, int64_t(tensor.nbytes()), int64_t(tensor.nbytes()));
  inner_.reduce(tensor, root, op);
  record.end = Clock::now();
  report(record);
}

void ObservedCommunicator::barrier() {
  CollectiveRecord record = record_of(CollectiveKind::barrier, 0, 0);
  inner_.barrier();
  record.end = Clock::now();
  report(record);
}

void ObservedCommunicator::send(const Tensor& tensor, int destination, int tag) {
  CollectiveRecord record =
      record_of(CollectiveKind::send, int64_t(tensor.nbytes()), int64_t(tensor.nbytes()));
  inner_.send(tensor, destination, tag);
  record.end = Clock::now();
  report(record);
}

void ObservedCommunicator::recv(const Tensor& tensor, int source, int tag) {
  CollectiveRecord record =
      record_of(CollectiveKind::recv, int64_t(tensor.nbytes()), int64_t(tensor.nbytes()));
  inner_.recv(tensor, source, tag);
  record.end = Clock::now();
  report(record);
}

}  // namespace zt::observe
