// Communicator: the collectives data parallelism needs, over one group of ranks. MPI works on
// host memory (MpiCommunicator), and a StagingCommunicator in front of it takes device tensors
// through pinned host copies; NCCL works on device memory (NcclCommunicator, CUDA builds only).
// Every collective is counted: calls, payload bytes and seconds per kind.
//
// Payload bytes are what a bandwidth-optimal ring algorithm sends from this rank, which is what
// the ZeRO paper's communication volumes count: all_reduce of B bytes sends 2B(N-1)/N,
// reduce_scatter and all_gather of a B-byte full buffer send B(N-1)/N, broadcast and reduce
// send B (root) as a pipeline would, send sends B, all_to_all of a B-byte buffer of N slices
// sends the N - 1 slices that leave the rank, B(N-1)/N. Libraries may pick other algorithms
// internally; the counts describe the data each rank must move, not their wire traffic.
// ring_payload_bytes() below is the one place this model is computed: the 2B(N-1)/N of an
// all_reduce whose B is not a multiple of N rounds down; broadcast and reduce charge B to every
// rank of a group of N > 1 (each link of the pipeline carries B once), nothing when N = 1;
// recv and barrier send nothing. B is counted in the tensor's own dtype (an f16 all_reduce
// staged through f32 still counts 2 bytes an element).
//
// Invariants: tensors passed to a collective are contiguous, on a device this communicator
// serves, and have the same dtype and size on every rank (checked where it costs nothing).
// A collective is called by every rank of the group, in the same order.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/tensor.h"

namespace zt::comm {

enum class ReduceOperation : uint8_t { sum, max, min };

enum class CollectiveKind : uint8_t {
  all_reduce,
  reduce_scatter,
  all_gather,
  broadcast,
  reduce,
  barrier,
  send,
  recv,
  all_to_all
};
inline constexpr size_t kCollectiveKindCount = 9;
std::string_view collective_kind_name(CollectiveKind kind);

struct CollectiveCounter {
  int64_t calls = 0;
  int64_t payload_bytes = 0;  // ring model, see above
  int64_t buffer_bytes = 0;   // the size of the tensors handed in (input side)
  double seconds = 0.0;       // wall time inside the call (blocking) or until wait() returns
};

struct CommStats {
  std::array<CollectiveCounter, kCollectiveKindCount> by_kind{};
  const CollectiveCounter& operator[](CollectiveKind kind) const { return by_kind[size_t(kind)]; }
  CollectiveCounter& operator[](CollectiveKind kind) { return by_kind[size_t(kind)]; }
  int64_t total_payload_bytes() const;
  // The counts of `later` minus those of `earlier`: what happened in between.
  static CommStats difference(const CommStats& later, const CommStats& earlier);
  std::string summary() const;  // one line per kind that was used
};

// The payload bytes of one call of `kind` on one rank of a group of `group_size` ranks, by the
// ring model above; `full_bytes` is B: the tensor for all_reduce, broadcast, reduce, send and
// recv, the full N-slice buffer for reduce_scatter (its input) and all_gather (its output).
int64_t ring_payload_bytes(CollectiveKind kind, int64_t full_bytes, int group_size);

// A non-blocking collective in flight. wait() returns when its result is in the tensors.
// Destroying an unfinished Work waits for it (a collective can't be abandoned). A Work must not
// outlive the communicator that started it.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  // Drives progress and says whether it is done (MPI progresses only inside MPI calls).
  virtual bool test() = 0;
  // wait() bounded by `timeout_seconds` of waiting here: returns whether the collective
  // finished (false: some rank of the group has not joined it yet). The default polls test(),
  // yielding the core between polls and sleeping once the wait has lasted a second.
  virtual bool wait_for(double timeout_seconds);
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "mpi", "nccl"

  // In place on `tensor`.
  virtual std::unique_ptr<Work> all_reduce_async(const Tensor& tensor,
                                                 ReduceOperation op = ReduceOperation::sum) = 0;
  // input holds size() equal slices; slice r, reduced over ranks, lands in rank r's output.
  virtual std::unique_ptr<Work> reduce_scatter_async(const Tensor& input, const Tensor& output,
                                                     ReduceOperation op = ReduceOperation::sum) = 0;
  // output holds size() slices; slice r is rank r's input.
  virtual std::unique_ptr<Work> all_gather_async(const Tensor& input, const Tensor& output) = 0;
  virtual std::unique_ptr<Work> broadcast_async(const Tensor& tensor, int root) = 0;

  // Blocking forms: the async call, then wait().
  void all_reduce(const Tensor& tensor, ReduceOperation op = ReduceOperation::sum);
  void reduce_scatter(const Tensor& input, const Tensor& output,
                      ReduceOperation op = ReduceOperation::sum);
  void all_gather(const Tensor& input, const Tensor& output);
  void broadcast(const Tensor& tensor, int root);

  // input and output hold size() equal slices; slice s of rank r's input lands in slice r of
  // rank s's output (MPI_Alltoall). Blocking. The default throws std::logic_error naming the
  // communicator: one without it cannot run the compressed all-reduce
  // (comm/compressed_allreduce.h).
  virtual void all_to_all(const Tensor& input, const Tensor& output);

  // The result lands in root's tensor; other ranks' tensors are left as they were.
  virtual void reduce(const Tensor& tensor, int root,
                      ReduceOperation op = ReduceOperation::sum) = 0;
  virtual void barrier() = 0;
  virtual void send(const Tensor& tensor, int destination, int tag = 0) = 0;
  virtual void recv(const Tensor& tensor, int source, int tag = 0) = 0;
  // A send that goes on while the caller does (MPI_Isend): the Work holds the tensor until the
  // receiver has it. Pipeline stages send this way so that no order of sends between stages can
  // wait on itself. The default sends at once and returns a finished Work.
  virtual std::unique_ptr<Work> send_async(const Tensor& tensor, int destination, int tag = 0);
  // A receive posted now that completes while the caller goes on (MPI_Irecv): the Work holds
  // the tensor, whose values are there once wait() returns; a message of another length is an
  // error from wait(). Pipeline stages post their receives as soon as they know the buffer and
  // wait only when a pass needs the data. Destroying the unfinished Work cancels the receive
  // (a stage that failed stops waiting). The default defers the (blocking) receive to wait():
  // posting never blocks, test() is false until then.
  virtual std::unique_ptr<Work> recv_async(const Tensor& tensor, int source, int tag = 0);

  // Ranks with the same color form a new group, ordered by key then by rank (MPI_Comm_split).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  // The communicator over the same ranks, in the same order, for small host tensors (norms,
  // overflow flags, losses): itself for MPI, the MPI communicator an NCCL one was made from.
  virtual Communicator& host_communicator() = 0;

  // What this communicator's calls moved (a decorator reports the wrapped one's).
  virtual const CommStats& stats() const { return stats_; }
  virtual void reset_stats() { stats_ = CommStats{}; }

 protected:
  CommStats stats_;
};

}  // namespace zt::comm
