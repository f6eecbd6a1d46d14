// MpiCommunicator: argument checks, f32 staging of 16-bit reductions, and the MPI calls with
// their stats. Each async op starts one MPI request; its Work finishes it and adds the elapsed
// time to the op's counter. Host tensors only: StagingCommunicator brings device tensors.
#include "comm/mpi_communicator.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <exception>
#include <functional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "comm/communicator_checks.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace zt::comm {
namespace {

using detail::check_peer;
using detail::check_rank;
using detail::check_same_dtype;
using detail::Clock;
using detail::CompletedWork;
using detail::count_call;
using detail::describe;
using detail::overlaps;
using detail::seconds_since;

void check_mpi(int code, std::string_view op) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(fmt::format("{}: MPI error: {}", op, std::string_view(text, length)));
}

MPI_Datatype mpi_datatype(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::f16:
    case DType::bf16:
      return MPI_UINT16_T;  // raw bits: only moved, never reduced
    case DType::i32:
      return MPI_INT32_T;
    case DType::i64:
      return MPI_INT64_T;
    case DType::u8:
      return MPI_UINT8_T;
  }
  throw std::invalid_argument(fmt::format("mpi: no MPI datatype for dtype {}", int(dtype)));
}

MPI_Op mpi_op(ReduceOperation op) {
  switch (op) {
    case ReduceOperation::sum:
      return MPI_SUM;
    case ReduceOperation::max:
      return MPI_MAX;
    case ReduceOperation::min:
      return MPI_MIN;
  }
  throw std::invalid_argument("mpi: unknown ReduceOperation");
}

// Defined, on the host (StagingCommunicator stages device tensors before this), contiguous, and
// countable by
// MPI's int counts.
void check_tensor(std::string_view op, std::string_view role, const Tensor& tensor) {
  detail::check_tensor(op, role, tensor, Device::cpu(),
                       "MpiCommunicator works on host tensors (wrap it in a "
                       "StagingCommunicator to pass device tensors)");
  if (tensor.numel() > INT_MAX)
    throw std::invalid_argument(fmt::format("{}: {} ({}) has {} elements; MPI counts stop at {}",
                                            op, role, describe(tensor), tensor.numel(), INT_MAX));
}

// A send or recv: a valid tensor, another rank of the group as the peer, a tag >= 0.
void check_point_to_point(std::string_view op, std::string_view role, const Tensor& tensor,
                          int peer, int rank, int group_size, int tag) {
  check_tensor(op, "tensor", tensor);
  check_peer(op, role, peer, rank, group_size, tag);
}

int element_count(const Tensor& tensor) {
  return int(tensor.numel());
}

// An f32 copy of a 16-bit tensor (or an empty f32 buffer of its shape), counted as comm memory.
Tensor f32_staging(const Tensor& tensor, bool copy_values) {
  Tensor staging = empty(tensor.sizes(), {.dtype = DType::f32, .tag = MemoryTag::comm});
  if (copy_values) ops::copy_(staging, tensor);
  return staging;
}

// One MPI request in flight. The tensors it reads and writes are held until it finishes, and
// `on_complete` (copying staged results back) runs exactly once, when it does.
class MpiWork final : public Work {
 public:
  MpiWork(std::string_view op, CollectiveCounter& counter, Clock::time_point start)
      : op_(op), counter_(counter), start_(start) {}
  ~MpiWork() override {
    if (done_) return;
    try {
      wait();
    } catch (const std::exception& error) {
      // A destructor can't throw, and a collective that failed leaves the group unusable.
      int world_rank = -1;
      MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
      fmt::print(stderr, "rank {}: {} (in an unfinished Work being destroyed)\n", world_rank,
                 error.what());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }

  MPI_Request* request() { return &request_; }
  void hold(std::vector<Tensor> tensors) { held_tensors_ = std::move(tensors); }
  void on_complete(std::function<void()> finish) { on_complete_ = std::move(finish); }

  void wait() override {
    if (done_) return;
    check_mpi(MPI_Wait(&request_, MPI_STATUS_IGNORE), op_);
    finish();
  }

  bool test() override {
    if (done_) return true;
    int completed = 0;
    check_mpi(MPI_Test(&request_, &completed, MPI_STATUS_IGNORE), op_);
    if (completed) finish();
    return done_;
  }

 private:
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
  std::vector<Tensor> held_tensors_;
  std::function<void()> on_complete_;
  bool done_ = false;
};

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
    try {
      wait();
    } catch (const std::exception& error) {
      int world_rank = -1;
      MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
      fmt::print(stderr, "rank {}: {} (in an unfinished Work being destroyed)\n", world_rank,
                 error.what());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
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

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, bool owns_comm)
    : comm_(comm), owns_comm_(owns_comm) {
  check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MpiCommunicator");
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MpiCommunicator");
  check_mpi(MPI_Comm_size(comm_, &size_), "MpiCommunicator");
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_comm_ && !finalized) MPI_Comm_free(&comm_);
}

std::unique_ptr<Work> MpiCommunicator::all_reduce_async(const Tensor& tensor, ReduceOperation op) {
  constexpr std::string_view kOp = "all_reduce";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "tensor", tensor);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::all_reduce, tensor.nbytes(), tensor.nbytes(), size_);
  if (size_ == 1) return std::make_unique<CompletedWork>(counter, start);  // nothing to combine
  if (tensor.numel() > 0 && tensor.numel() % size_ == 0) {
    // Already N equal slices: exchange from it and gather back into it.
    Tensor flat = ops::reshape(tensor, {tensor.numel()});
    return std::make_unique<RankOrderReduceWork>(kOp, counter, start, comm_, size_,
                                                 reduce_staging_numel_, flat, op, flat,
                                                 [](const Tensor&) {});
  }
  // Else staged, padded to N equal slices.
  int64_t padded_numel = std::max<int64_t>((tensor.numel() + size_ - 1) / size_ * size_, size_);
  Tensor padded = zeros({padded_numel}, {.dtype = tensor.dtype(), .tag = MemoryTag::comm});
  ops::copy_(ops::narrow(padded, 0, 0, tensor.numel()), ops::reshape(tensor, {tensor.numel()}));
  return std::make_unique<RankOrderReduceWork>(
      kOp, counter, start, comm_, size_, reduce_staging_numel_, padded, op, padded,
      [tensor](const Tensor& result) {
        ops::copy_(ops::reshape(tensor, {tensor.numel()}),
                   ops::narrow(result, 0, 0, tensor.numel()));
      });
}

std::unique_ptr<Work> MpiCommunicator::reduce_scatter_async(const Tensor& input,
                                                            const Tensor& output,
                                                            ReduceOperation op) {
  constexpr std::string_view kOp = "reduce_scatter";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "input", input);
  check_tensor(kOp, "output", output);
  check_same_dtype(kOp, input, output);
  if (input.numel() != output.numel() * size_)
    throw std::invalid_argument(fmt::format(
        "{}: input ({}) must hold {} slices of output ({}): expected {} elements, got {}", kOp,
        describe(input), size_, describe(output), output.numel() * size_, input.numel()));
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::reduce_scatter, input.nbytes(), input.nbytes(), size_);
  if (size_ == 1) {  // the one slice is the whole input
    if (!input.is_same(output)) ops::copy_(output, input);
    return std::make_unique<CompletedWork>(counter, start);
  }
  // The output is written only after the exchange has read the input, so an output
  // overlapping the input is no problem.
  Tensor send = ops::reshape(input, {input.numel()});
  return std::make_unique<RankOrderReduceWork>(
      kOp, counter, start, comm_, size_, reduce_staging_numel_, send, op, Tensor(),
      [output](const Tensor& slice) { ops::copy_(ops::reshape(output, {output.numel()}), slice); });
}

std::unique_ptr<Work> MpiCommunicator::all_gather_async(const Tensor& input, const Tensor& output) {
  constexpr std::string_view kOp = "all_gather";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "input", input);
  check_tensor(kOp, "output", output);
  check_same_dtype(kOp, input, output);
  if (output.numel() != input.numel() * size_)
    throw std::invalid_argument(fmt::format(
        "{}: output ({}) must hold {} slices of input ({}): expected {} elements, got {}", kOp,
        describe(output), size_, describe(input), input.numel() * size_, output.numel()));
  const void* send_data = input.raw_data();
  if (overlaps(input, output)) {
    bool is_own_slice =
        input.storage_offset() == output.storage_offset() + int64_t(rank_) * input.numel();
    if (!is_own_slice)
      throw std::invalid_argument(fmt::format(
          "{}: input ({}) overlaps output ({}) but is not its slice {} (the only overlap "
          "gathered in place)",
          kOp, describe(input), describe(output), rank_));
    send_data = MPI_IN_PLACE;
  }
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::all_gather, input.nbytes(), output.nbytes(), size_);
  auto work = std::make_unique<MpiWork>(kOp, counter, start);
  MPI_Datatype datatype = mpi_datatype(input.dtype());
  check_mpi(MPI_Iallgather(send_data, element_count(input), datatype, output.raw_data(),
                           element_count(input), datatype, comm_, work->request()),
            kOp);
  work->hold({input, output});
  return work;
}

std::unique_ptr<Work> MpiCommunicator::broadcast_async(const Tensor& tensor, int root) {
  constexpr std::string_view kOp = "broadcast";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "tensor", tensor);
  check_rank(kOp, "root", root, size_);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::broadcast, tensor.nbytes(), tensor.nbytes(), size_);
  auto work = std::make_unique<MpiWork>(kOp, counter, start);
  check_mpi(MPI_Ibcast(tensor.raw_data(), element_count(tensor), mpi_datatype(tensor.dtype()), root,
                       comm_, work->request()),
            kOp);
  work->hold({tensor});
  return work;
}

void MpiCommunicator::reduce(const Tensor& tensor, int root, ReduceOperation op) {
  constexpr std::string_view kOp = "reduce";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "tensor", tensor);
  check_rank(kOp, "root", root, size_);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::reduce, tensor.nbytes(), tensor.nbytes(), size_);
  Tensor buffer = is_half(tensor.dtype()) ? f32_staging(tensor, true) : tensor;
  bool is_root = rank_ == root;
  // The root reduces in place; the others only send, so their tensors stay as they were.
  check_mpi(
      MPI_Reduce(is_root ? MPI_IN_PLACE : buffer.raw_data(), is_root ? buffer.raw_data() : nullptr,
                 element_count(buffer), mpi_datatype(buffer.dtype()), mpi_op(op), root, comm_),
      kOp);
  if (is_root && !buffer.is_same(tensor)) ops::copy_(tensor, buffer);
  counter.seconds += seconds_since(start);
}

void MpiCommunicator::barrier() {
  Clock::time_point start = Clock::now();
  CollectiveCounter& counter = count_call(stats_, CollectiveKind::barrier, 0, 0, size_);
  check_mpi(MPI_Barrier(comm_), "barrier");
  counter.seconds += seconds_since(start);
}

void MpiCommunicator::send(const Tensor& tensor, int destination, int tag) {
  constexpr std::string_view kOp = "send";
  Clock::time_point start = Clock::now();
  check_point_to_point(kOp, "destination", tensor, destination, rank_, size_, tag);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::send, tensor.nbytes(), tensor.nbytes(), size_);
  check_mpi(MPI_Send(tensor.raw_data(), element_count(tensor), mpi_datatype(tensor.dtype()),
                     destination, tag, comm_),
            kOp);
  counter.seconds += seconds_since(start);
}

void MpiCommunicator::recv(const Tensor& tensor, int source, int tag) {
  constexpr std::string_view kOp = "recv";
  Clock::time_point start = Clock::now();
  check_point_to_point(kOp, "source", tensor, source, rank_, size_, tag);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::recv, tensor.nbytes(), tensor.nbytes(), size_);
  MPI_Datatype datatype = mpi_datatype(tensor.dtype());
  MPI_Status status;
  int code =
      MPI_Recv(tensor.raw_data(), element_count(tensor), datatype, source, tag, comm_, &status);
  if (code != MPI_SUCCESS) {
    int error_class = 0;
    MPI_Error_class(code, &error_class);
    if (error_class == MPI_ERR_TRUNCATE)
      throw std::runtime_error(fmt::format(
          "{}: the message from rank {} (tag {}) is longer than the receiving tensor ({})", kOp,
          source, tag, describe(tensor)));
    check_mpi(code, kOp);
  }
  int received_elements = 0;
  check_mpi(MPI_Get_count(&status, datatype, &received_elements), kOp);
  if (received_elements != element_count(tensor))
    throw std::runtime_error(fmt::format(
        "{}: the message from rank {} (tag {}) holds {} elements; the receiving tensor ({}) "
        "expects {}",
        kOp, source, tag, received_elements, describe(tensor), tensor.numel()));
  counter.seconds += seconds_since(start);
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  return split_group(color, key);
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::split_group(int color, int key) {
  if (color < 0) throw std::invalid_argument(fmt::format("split: color {} must be >= 0", color));
  MPI_Comm group = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split(comm_, color, key, &group), "split");
  return std::make_unique<MpiCommunicator>(group, true);
}

}  // namespace zt::comm
