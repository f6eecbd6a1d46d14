// NcclCommunicator: the Communicator contract over one NCCL communicator, on tensors on this
// rank's CUDA device. Built only with CUDA, into the CUDA archive, from which it registers its
// maker for zt::initialize (comm/nccl_registry.h). Invariants: every collective runs on the
// device's communication stream after the work already queued on its compute stream (an
// event), and Work::wait makes the compute stream wait for it (on the device, the host is not
// blocked), so results are visible to every later kernel and tensor read. Stats are counted exactly
// as MpiCommunicator counts them (ring payload model, sizes in the tensor's own dtype).
//
// Differences from MpiCommunicator, by design of NCCL: f16/bf16 are summed by NCCL in their
// own type (no f32 staging, no rank-order sum), so 16-bit results can differ from the MPI path
// in the last bits and are not bitwise equal across ZeRO stages; send/recv ignore tags
// (messages between two ranks match in the order they were sent); wait() returns before the
// data has arrived (only the compute stream is ordered), so `seconds` is host time to enqueue,
// not transfer time, except for barrier, which blocks the host.
#pragma once

#include <nccl.h>

#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/mpi_communicator.h"

namespace zt::comm {

class NcclCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm`, whose tensors live on cuda:`device`; `host` is the MPI
  // communicator over the same ranks in the same order, and must outlive this one.
  NcclCommunicator(ncclComm_t comm, int device, MpiCommunicator& host);
  // The same, owning `host` (a group split from another's host communicator).
  NcclCommunicator(ncclComm_t comm, int device, std::unique_ptr<MpiCommunicator> host);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl"; }
  int device_index() const { return device_; }

  std::unique_ptr<Work> all_reduce_async(const Tensor& tensor,
                                         ReduceOperation op = ReduceOperation::sum) override;
  // `output` may alias `input`: its own slice is reduced in place, any other overlap is staged.
  std::unique_ptr<Work> reduce_scatter_async(const Tensor& input, const Tensor& output,
                                             ReduceOperation op = ReduceOperation::sum) override;
  // `input` may be exactly output's slice rank() (gathered in place); any other overlap is an
  // error.
  std::unique_ptr<Work> all_gather_async(const Tensor& input, const Tensor& output) override;
  std::unique_ptr<Work> broadcast_async(const Tensor& tensor, int root) override;
  // One ncclSend and one ncclRecv per peer (itself included) in one NCCL group; blocking as the
  // other blocking calls are (the compute stream waits, the host does not).
  void all_to_all(const Tensor& input, const Tensor& output) override;

  void reduce(const Tensor& tensor, int root, ReduceOperation op = ReduceOperation::sum) override;
  // Blocks the host until every rank has reached it (a one-element all_reduce, synchronised).
  void barrier() override;
  // Each message is preceded by its element count, so that recv can name a length mismatch
  // (MpiCommunicator's contract) instead of hanging; the mismatched message is drained first.
  void send(const Tensor& tensor, int destination, int tag = 0) override;
  void recv(const Tensor& tensor, int source, int tag = 0) override;

  // ncclCommSplit, and the same split of the host communicator: collective over this group;
  // color must be >= 0.
  std::unique_ptr<Communicator> split(int color, int key) override;
  // The MPI communicator this one was made from (for a split one, the same split of that).
  Communicator& host_communicator() override { return host_; }

 private:
  ncclComm_t comm_;
  int device_;
  std::unique_ptr<MpiCommunicator> owned_host_;  // null when host_ belongs to the caller
  MpiCommunicator& host_;
  int rank_ = 0;
  int size_ = 1;
};

// Creates the NCCL communicator of `world`'s ranks, one CUDA device per rank (the rank's local
// rank on its node; every rank must see all of its node's devices). Collective over `world`:
// the ncclUniqueId travels by MPI_Bcast and the device check is agreed by MPI_Allreduce, both
// on world's MPI communicator directly, so world's stats are unchanged. Throws
// std::runtime_error on every rank, naming the rank and its device count, when any rank has no
// device of its own (no GPU, or more ranks on a node than devices). The result keeps a
// reference to `world` as its host_communicator(): world must outlive it.
std::unique_ptr<NcclCommunicator> make_nccl_communicator(MpiCommunicator& world);

}  // namespace zt::comm
