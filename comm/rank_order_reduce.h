// The rank-order reduction behind MpiCommunicator's all_reduce and reduce_scatter.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

#include "comm/mpi_work.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace zt::comm::detail {

// A reduction whose sums are taken in rank order 0, 1, ..., N-1 for every element, whatever
// algorithm MPI would pick for the message size: an all-to-all hands each rank every rank's
// copy of its slice (the data a ring reduce-scatter moves, (N-1)/N of the buffer), the rank
// sums them in order, and for all_reduce an all-gather returns the reduced slices to everyone.
// Results are therefore bitwise reproducible, and equal wherever the same values are summed:
// that is what lets ZeRO stages 1-3 match stage 0 bit for bit.
class RankOrderReduceWork final : public Work {
 public:
  // `send` holds the values to reduce as N equal slices; it is held until the exchange has read
  // it. They travel in their own dtype and are summed in the compute dtype (f32 for 16-bit
  // values, rounded once per element at the end), so 16-bit buffers cost 2 bytes an element on
  // the wire and lose no precision to intermediate roundings. When `gather_into` is defined
  // (all_reduce), every rank ends with all reduced slices in it (it may be `send` itself: the
  // exchange is over by then); else (reduce_scatter) the reduced slice of this rank goes to
  // on_done. on_done runs once, last.
  RankOrderReduceWork(std::string_view op_name, CollectiveCounter& counter, Clock::time_point start,
                      MPI_Comm comm, int size, int64_t staging_numel, Tensor send,
                      ReduceOperation op, Tensor gather_into,
                      std::function<void(const Tensor&)> on_done)
      : op_name_(op_name),
        counter_(counter),
        start_(start),
        comm_(comm),
        size_(size),
        send_(std::move(send)),
        gather_into_(std::move(gather_into)),
        op_(op),
        on_done_(std::move(on_done)) {
    slice_numel_ = send_.numel() / size_;
    // The exchange runs in rounds of chunk_numel_ elements of every slice, so the receive
    // buffer holds N chunks rather than the whole buffer; sums stay in rank order.
    chunk_numel_ =
        std::clamp<int64_t>(staging_numel / size_, 1, std::max<int64_t>(slice_numel_, 1));
    DType wire = send_.dtype();
    DType compute = is_half(wire) ? DType::f32 : wire;
    reduced_slice_ = empty({slice_numel_}, {.dtype = compute, .tag = MemoryTag::comm});
    exchanged_ = empty({chunk_numel_ * size_}, {.dtype = wire, .tag = MemoryTag::comm});
    if (compute != wire)
      widened_ = empty({chunk_numel_}, {.dtype = compute, .tag = MemoryTag::comm});
    start_exchange_round();
  }
  ~RankOrderReduceWork() override {
    if (phase_ == Phase::done) return;
    wait_or_abort_job(*this);
  }

  void wait() override {
    while (phase_ != Phase::done) {
      if (!request_completed_) check_mpi(MPI_Wait(&request_, MPI_STATUS_IGNORE), op_name_);
      request_completed_ = true;
      advance();
    }
  }

  // Completes what it can without starting a collective: every rank must start collectives on
  // a communicator in the same order, and when a poll happens to see a round finish differs
  // from rank to rank. The next round or the all-gather starts in wait(), which every rank
  // reaches at the same point of the program.
  bool test() override {
    if (phase_ == Phase::done) return true;
    if (!request_completed_) {
      int completed = 0;
      check_mpi(MPI_Test(&request_, &completed, MPI_STATUS_IGNORE), op_name_);
      if (!completed) return false;
      request_completed_ = true;
    }
    bool last_round = (round_ + 1) * chunk_numel_ >= slice_numel_;
    if (phase_ == Phase::exchanging && (!last_round || gather_into_.defined())) return false;
    advance();
    return true;
  }

 private:
  enum class Phase { exchanging, gathering, done };

  // Starts exchanging chunk `round_` of every slice: rank r receives, from every rank, that
  // rank's copy of chunk round_ of slice r.
  void start_exchange_round() {
    int64_t begin = round_ * chunk_numel_;
    round_numel_ = std::min(chunk_numel_, slice_numel_ - begin);
    send_counts_.assign(size_t(size_), int(round_numel_));
    send_displacements_.resize(size_t(size_));
    receive_displacements_.resize(size_t(size_));
    for (int r = 0; r < size_; ++r) {
      send_displacements_[size_t(r)] = int(int64_t(r) * slice_numel_ + begin);
      receive_displacements_[size_t(r)] = int(int64_t(r) * round_numel_);
    }
    MPI_Datatype datatype = mpi_datatype(send_.dtype());
    request_completed_ = false;
    check_mpi(MPI_Ialltoallv(send_.raw_data(), send_counts_.data(), send_displacements_.data(),
                             datatype, exchanged_.raw_data(), send_counts_.data(),
                             receive_displacements_.data(), datatype, comm_, &request_),
              op_name_);
  }

  // Sums the N received copies of this round's chunk in rank order into the reduced slice.
  void reduce_exchange_round() {
    Tensor target = ops::narrow(reduced_slice_, 0, round_ * chunk_numel_, round_numel_);
    ops::copy_(target, ops::narrow(exchanged_, 0, 0, round_numel_));
    for (int source = 1; source < size_; ++source) {
      Tensor block = ops::narrow(exchanged_, 0, int64_t(source) * round_numel_, round_numel_);
      if (widened_.defined()) {
        Tensor wide = ops::narrow(widened_, 0, 0, round_numel_);
        ops::copy_(wide, block);
        block = wide;
      }
      if (op_ == ReduceOperation::sum)
        ops::add_(target, block);
      else if (op_ == ReduceOperation::max)
        ops::copy_(target, ops::maximum(target, block));
      else
        ops::copy_(target, ops::minimum(target, block));
    }
  }

  // Called when the current request has completed.
  void advance() {
    if (phase_ == Phase::exchanging) {
      reduce_exchange_round();
      round_ += 1;
      if (round_ * chunk_numel_ < slice_numel_) {
        start_exchange_round();
        return;
      }
      send_ = Tensor();  // read: the caller's buffer may go now
      exchanged_ = Tensor();
      widened_ = Tensor();
      if (!gather_into_.defined()) {
        finish(reduced_slice_);
        return;
      }
      // The reduced slice goes back out in the wire dtype, rounded once.
      if (reduced_slice_.dtype() != gather_into_.dtype()) {
        Tensor rounded =
            empty({slice_numel_}, {.dtype = gather_into_.dtype(), .tag = MemoryTag::comm});
        ops::copy_(rounded, reduced_slice_);
        reduced_slice_ = rounded;
      }
      MPI_Datatype datatype = mpi_datatype(gather_into_.dtype());
      request_completed_ = false;
      check_mpi(
          MPI_Iallgather(reduced_slice_.raw_data(), int(slice_numel_), datatype,
                         gather_into_.raw_data(), int(slice_numel_), datatype, comm_, &request_),
          op_name_);
      phase_ = Phase::gathering;
      return;
    }
    finish(gather_into_);
  }

  void finish(const Tensor& result) {
    phase_ = Phase::done;
    on_done_(result);
    gather_into_ = Tensor();
    reduced_slice_ = Tensor();
    counter_.seconds += seconds_since(start_);
  }

  std::string_view op_name_;
  CollectiveCounter& counter_;
  Clock::time_point start_;
  MPI_Comm comm_;
  int size_;
  Tensor send_, gather_into_, exchanged_, widened_, reduced_slice_;
  int64_t slice_numel_ = 0;
  int64_t chunk_numel_ = 1, round_ = 0, round_numel_ = 0;
  std::vector<int> send_counts_, send_displacements_, receive_displacements_;
  ReduceOperation op_;
  std::function<void(const Tensor&)> on_done_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  bool request_completed_ = false;
  Phase phase_ = Phase::exchanging;
};

}  // namespace zt::comm::detail
