// What the MPI communicator's Works share (comm/mpi_communicator.cpp, comm/rank_order_reduce.h):
// MPI error codes as exceptions naming the op, dtype and op mappings, and MpiWork, one MPI
// request in flight. Not a public header: MPI communicator files include it.
#pragma once

#include <mpi.h>

#include <functional>
#include <string_view>
#include <vector>

#include "comm/communicator.h"
#include "comm/communicator_checks.h"
#include "core/tensor.h"

namespace zt::comm::detail {

// Throws std::runtime_error naming `op` and MPI's message when `code` is not MPI_SUCCESS.
void check_mpi(int code, std::string_view op);
MPI_Datatype mpi_datatype(DType dtype);
MPI_Op mpi_op(ReduceOperation op);
int element_count(const Tensor& tensor);
// A Work being destroyed unfinished must finish (a collective can't be abandoned); a failure
// then can't be thrown from a destructor and leaves the group unusable, so it ends the job.
void wait_or_abort_job(Work& work);

// One MPI request in flight. The tensors it reads and writes are held until it finishes, and
// `on_complete` (copying staged results back) runs exactly once, when it does.
class MpiWork final : public Work {
 public:
  MpiWork(std::string_view op, CollectiveCounter& counter, Clock::time_point start)
      : op_(op), counter_(counter), start_(start) {}
  ~MpiWork() override {
    if (done_) return;
    if (cancel_when_abandoned_) {
      // A receive no one waits for any more (its stage failed): its message may never come.
      MPI_Cancel(&request_);
      MPI_Wait(&request_, MPI_STATUS_IGNORE);
      return;
    }
    wait_or_abort_job(*this);
  }
  // For point-to-point receives: destroying the Work unfinished cancels it instead of waiting.
  void cancel_when_abandoned() { cancel_when_abandoned_ = true; }

  MPI_Request* request() { return &request_; }
  void hold(std::vector<Tensor> tensors) { held_tensors_ = std::move(tensors); }
  void on_complete(std::function<void()> finish) { on_complete_ = std::move(finish); }

  // The status of the finished request (a receive's source, tag and length).
  const MPI_Status& status() const { return status_; }

  void wait() override {
    if (done_) return;
    checked(MPI_Wait(&request_, &status_));
    finish();
  }

  bool test() override {
    if (done_) return true;
    int completed = 0;
    checked(MPI_Test(&request_, &completed, &status_));
    if (completed) finish();
    return done_;
  }

 private:
  // A failed request is over (MPI freed it): it is not waited for again on destruction.
  void checked(int code) {
    if (code == MPI_SUCCESS) return;
    done_ = true;
    held_tensors_.clear();
    check_mpi(code, op_);
  }

  void finish() {
    done_ = true;
    if (on_complete_) on_complete_();
    held_tensors_.clear();
    counter_.seconds += seconds_since(start_);
  }

  std::string_view op_;
  CollectiveCounter& counter_;
  Clock::time_point start_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  MPI_Status status_{};
  std::vector<Tensor> held_tensors_;
  std::function<void()> on_complete_;
  bool done_ = false;
  bool cancel_when_abandoned_ = false;
};

}  // namespace zt::comm::detail
