// StagingCommunicator: lets a communicator that works on host memory (MpiCommunicator, without
// CUDA-aware MPI) take device tensors. It is a decorator: a call whose tensors are on a device
// runs the wrapped communicator's same call on pinned host copies of them and copies the
// results back (comm/host_staging.h); a call on host tensors goes straight through. Results,
// stats and errors are the wrapped communicator's, bit for bit, so a staged call counts what
// the same call on host tensors counts. All tensors of one call must be on one device.
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.h"

namespace zt::comm {

class StagingCommunicator final : public Communicator {
 public:
  // Wraps `host`, which must outlive this.
  explicit StagingCommunicator(Communicator& host);
  // Wraps and owns `host`.
  explicit StagingCommunicator(std::unique_ptr<Communicator> host);

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  std::string name() const override { return host_.name(); }

  std::unique_ptr<Work> all_reduce_async(const Tensor& tensor,
                                         ReduceOperation op = ReduceOperation::sum) override;
  std::unique_ptr<Work> reduce_scatter_async(const Tensor& input, const Tensor& output,
                                             ReduceOperation op = ReduceOperation::sum) override;
  std::unique_ptr<Work> all_gather_async(const Tensor& input, const Tensor& output) override;
  std::unique_ptr<Work> broadcast_async(const Tensor& tensor, int root) override;
  // Staged as the others, so that the compressed all-reduce (comm/compressed_allreduce.h) runs
  // over a staging communicator too.
  void all_to_all(const Tensor& input, const Tensor& output) override;
  void reduce(const Tensor& tensor, int root, ReduceOperation op = ReduceOperation::sum) override;
  void barrier() override { host_.barrier(); }
  void send(const Tensor& tensor, int destination, int tag = 0) override;
  void recv(const Tensor& tensor, int source, int tag = 0) override;
  // Host tensors: the wrapped communicator's non-blocking receive; device tensors are
  // received through the staging copy at once (the default).
  std::unique_ptr<Work> recv_async(const Tensor& tensor, int source, int tag = 0) override;

  // A staging communicator over the wrapped one's split. Collective over this group.
  std::unique_ptr<Communicator> split(int color, int key) override;
  Communicator& host_communicator() override { return host_.host_communicator(); }
  Communicator& wrapped() { return host_; }

  const CommStats& stats() const override { return host_.stats(); }
  void reset_stats() override { host_.reset_stats(); }

 private:
  std::unique_ptr<Communicator> owned_host_;
  Communicator& host_;
};

}  // namespace zt::comm
