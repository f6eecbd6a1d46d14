// ObservedCommunicator: a decorator that tells the trace recorder (when it is recording) and
// an optional listener (the comms logger) about every collective the wrapped communicator
// finishes: its kind, bytes and the time from its call to the wait that saw it done. Results,
// stats and errors are the wrapped communicator's; the engine puts one in front of its
// data-parallel communicator only when a trace or the comms logger is configured, so without
// them nothing here runs.
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.h"
#include "observe/collective_record.h"

namespace zt::observe {

class ObservedCommunicator final : public comm::Communicator {
 public:
  // Wraps `inner`, which (and `listener`, when not null) must outlive this.
  ObservedCommunicator(comm::Communicator& inner, CollectiveListener* listener);

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string name() const override { return inner_.name(); }

  std::unique_ptr<comm::Work> all_reduce_async(
      const Tensor& tensor, comm::ReduceOperation op = comm::ReduceOperation::sum) override;
  std::unique_ptr<comm::Work> reduce_scatter_async(
      const Tensor& input, const Tensor& output,
      comm::ReduceOperation op = comm::ReduceOperation::sum) override;
  std::unique_ptr<comm::Work> all_gather_async(const Tensor& input, const Tensor& output) override;
  std::unique_ptr<comm::Work> broadcast_async(const Tensor& tensor, int root) override;
  void reduce(const Tensor& tensor, int root,
              comm::ReduceOperation op = comm::ReduceOperation::sum) override;
  void barrier() override;
  void send(const Tensor& tensor, int destination, int tag = 0) override;
  void recv(const Tensor& tensor, int source, int tag = 0) override;

  // The wrapped communicator's split, unobserved.
  std::unique_ptr<comm::Communicator> split(int color, int key) override {
    return inner_.split(color, key);
  }
  comm::Communicator& host_communicator() override { return inner_.host_communicator(); }

  const comm::CommStats& stats() const override { return inner_.stats(); }
  void reset_stats() override {
    inner_.reset_stats();
    if (listener_ != nullptr) listener_->on_reset_stats();
  }

 private:
  CollectiveRecord record_of(comm::CollectiveKind kind, int64_t message_bytes,
                             int64_t buffer_bytes) const;
  std::unique_ptr<comm::Work> observe(std::unique_ptr<comm::Work> work, CollectiveRecord record);
  void report(CollectiveRecord record) const;

  comm::Communicator& inner_;
  CollectiveListener* listener_;
};

}  // namespace zt::observe
