// The parts of the Communicator contract that every implementation shares: kind names, the
// stats summary, and the blocking collectives, each of which is its async form then wait().
#include "comm/communicator.h"

#include <fmt/format.h>

#include <stdexcept>

#include <chrono>
#include <thread>
#include <utility>

namespace zt::comm {

bool Work::wait_for(double timeout_seconds) {
  auto start = std::chrono::steady_clock::now();
  while (!test()) {
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (waited >= timeout_seconds) return false;
    // A short wait is the network or a peer a moment behind: poll on, yielding the core as
    // MPI_Wait does under mpi_yield_when_idle. A long one is a peer computing (or absent):
    // sleep between polls so that waiting costs the busy ranks nothing.
    if (waited < 1.0) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return true;
}

std::string_view collective_kind_name(CollectiveKind kind) {
  static constexpr std::string_view kNames[kCollectiveKindCount] = {
      "all_reduce", "reduce_scatter", "all_gather", "broadcast", "reduce",
      "barrier",    "send",           "recv",       "all_to_all"};
  return kNames[size_t(kind)];
}

int64_t ring_payload_bytes(CollectiveKind kind, int64_t full_bytes, int group_size) {
  int64_t ranks = group_size;
  if (ranks <= 1) return 0;
  switch (kind) {
    case CollectiveKind::all_reduce:
      return 2 * full_bytes * (ranks - 1) / ranks;
    case CollectiveKind::reduce_scatter:
    case CollectiveKind::all_gather:
    case CollectiveKind::all_to_all:
      return full_bytes * (ranks - 1) / ranks;
    case CollectiveKind::broadcast:
    case CollectiveKind::reduce:
    case CollectiveKind::send:
      return full_bytes;
    case CollectiveKind::barrier:
    case CollectiveKind::recv:
      return 0;
  }
  return 0;
}

CommStats CommStats::difference(const CommStats& later, const CommStats& earlier) {
  CommStats result;
  for (size_t kind = 0; kind < kCollectiveKindCount; ++kind) {
    result.by_kind[kind].calls = later.by_kind[kind].calls - earlier.by_kind[kind].calls;
    result.by_kind[kind].payload_bytes =
        later.by_kind[kind].payload_bytes - earlier.by_kind[kind].payload_bytes;
    result.by_kind[kind].buffer_bytes =
        later.by_kind[kind].buffer_bytes - earlier.by_kind[kind].buffer_bytes;
    result.by_kind[kind].seconds = later.by_kind[kind].seconds - earlier.by_kind[kind].seconds;
  }
  return result;
}

int64_t CommStats::total_payload_bytes() const {
  int64_t total = 0;
  for (const CollectiveCounter& counter : by_kind) total += counter.payload_bytes;
  return total;
}

std::string CommStats::summary() const {
  std::string lines;
  for (size_t kind = 0; kind < kCollectiveKindCount; ++kind) {
    const CollectiveCounter& counter = by_kind[kind];
    if (counter.calls == 0) continue;
    lines +=
        fmt::format("{:<15} {:>8} calls {:>14} payload bytes {:>14} buffer bytes {:>10.6f} s\n",
                    collective_kind_name(CollectiveKind(kind)), counter.calls,
                    counter.payload_bytes, counter.buffer_bytes, counter.seconds);
  }
  return lines;
}

void Communicator::all_to_all(const Tensor&, const Tensor&) {
  throw std::logic_error(
      fmt::format("all_to_all: the {} communicator does not implement it", name()));
}

void Communicator::all_reduce(const Tensor& tensor, ReduceOperation op) {
  all_reduce_async(tensor, op)->wait();
}

void Communicator::reduce_scatter(const Tensor& input, const Tensor& output, ReduceOperation op) {
  reduce_scatter_async(input, output, op)->wait();
}

void Communicator::all_gather(const Tensor& input, const Tensor& output) {
  all_gather_async(input, output)->wait();
}

void Communicator::broadcast(const Tensor& tensor, int root) {
  broadcast_async(tensor, root)->wait();
}

namespace {
class FinishedWork final : public Work {
 public:
  void wait() override {}
  bool test() override { return true; }
};
}  // namespace

std::unique_ptr<Work> Communicator::send_async(const Tensor& tensor, int destination, int tag) {
  send(tensor, destination, tag);
  return std::make_unique<FinishedWork>();
}

namespace {
// A receive deferred to wait(): for a communicator without non-blocking receives. Posting
// must not block (a stage posts receives whose senders first wait for it), so nothing is
// received until wait(); an abandoned one receives nothing.
class DeferredReceive final : public Work {
 public:
  DeferredReceive(Communicator& comm, Tensor tensor, int source, int tag)
      : comm_(comm), tensor_(std::move(tensor)), source_(source), tag_(tag) {}
  void wait() override {
    if (done_) return;
    done_ = true;
    comm_.recv(tensor_, source_, tag_);
  }
  bool test() override { return done_; }

 private:
  Communicator& comm_;
  Tensor tensor_;
  int source_, tag_;
  bool done_ = false;
};
}  // namespace

std::unique_ptr<Work> Communicator::recv_async(const Tensor& tensor, int source, int tag) {
  return std::make_unique<DeferredReceive>(*this, tensor, source, tag);
}

}  // namespace zt::comm
