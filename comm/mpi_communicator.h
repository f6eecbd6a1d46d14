// MpiCommunicator: the Communicator contract over one MPI communicator, on host (CPU) tensors.
// A tensor on a device is an error naming it; wrap the communicator in a StagingCommunicator
// (comm/staging_communicator.h) to pass device tensors through pinned host copies.
// f16/bf16 travel as raw 2-byte data; their reductions are staged through f32 buffers tagged
// MemoryTag::comm, reduced in f32 and rounded once. Invariants: MPI errors come back as
// exceptions naming the op (the communicator uses MPI_ERRORS_RETURN); arguments are checked on
// every rank before anything is sent, so a bad call throws everywhere instead of hanging.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <memory>
#include <string>

#include "comm/communicator.h"

namespace zt::comm {

class MpiCommunicator final : public Communicator {
 public:
  // Wraps `comm`. With owns_comm the communicator is freed at destruction (while MPI is up);
  // the world communicator is not owned.
  MpiCommunicator(MPI_Comm comm, bool owns_comm);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }
  MPI_Comm mpi_comm() const { return comm_; }

  std::unique_ptr<Work> all_reduce_async(const Tensor& tensor,
                                         ReduceOperation op = ReduceOperation::sum) override;
  // `output` may alias `input` (rank r's slice of it, say): the result is then staged.
  std::unique_ptr<Work> reduce_scatter_async(const Tensor& input, const Tensor& output,
                                             ReduceOperation op = ReduceOperation::sum) override;
  // `input` may be exactly output's slice rank() (a shard living in the full buffer, as ZeRO
  // keeps it): that is gathered in place; any other overlap is an error.
  std::unique_ptr<Work> all_gather_async(const Tensor& input, const Tensor& output) override;
  std::unique_ptr<Work> broadcast_async(const Tensor& tensor, int root) override;

  void all_to_all(const Tensor& input, const Tensor& output) override;
  void reduce(const Tensor& tensor, int root, ReduceOperation op = ReduceOperation::sum) override;
  void barrier() override;
  void send(const Tensor& tensor, int destination, int tag = 0) override;
  std::unique_ptr<Work> send_async(const Tensor& tensor, int destination, int tag = 0) override;
  // The message must hold exactly tensor.numel() elements; a shorter or longer one is an error.
  void recv(const Tensor& tensor, int source, int tag = 0) override;
  std::unique_ptr<Work> recv_async(const Tensor& tensor, int source, int tag = 0) override;

  // Collective over this group; color must be >= 0.
  std::unique_ptr<Communicator> split(int color, int key) override;
  std::unique_ptr<MpiCommunicator> split_group(int color, int key);  // split(), typed
  Communicator& host_communicator() override { return *this; }

  // all_reduce and reduce_scatter sum in rank order after exchanging slices in rounds; this is
  // how many received elements (N chunks) one round may hold. Results do not depend on it.
  void set_reduce_staging_numel(int64_t elements) {
    reduce_staging_numel_ = std::max<int64_t>(elements, 1);
  }
  int64_t reduce_staging_numel() const { return reduce_staging_numel_; }

 private:
  int64_t reduce_staging_numel_ = int64_t(1) << 20;  // 4 MiB of f32
  MPI_Comm comm_;
  bool owns_comm_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace zt::comm
