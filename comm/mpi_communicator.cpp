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
#include "comm/mpi_work.h"
#include "comm/rank_order_reduce.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace zt::comm {
namespace {

using detail::check_mpi;
using detail::check_peer;
using detail::check_rank;
using detail::check_same_dtype;
using detail::Clock;
using detail::CompletedWork;
using detail::count_call;
using detail::describe;
using detail::element_count;
using detail::mpi_datatype;
using detail::mpi_op;
using detail::MpiWork;
using detail::overlaps;
using detail::RankOrderReduceWork;
using detail::seconds_since;

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

// An f32 copy of a 16-bit tensor (or an empty f32 buffer of its shape), counted as comm memory.
Tensor f32_staging(const Tensor& tensor, bool copy_values) {
  Tensor staging = empty(tensor.sizes(), {.dtype = DType::f32, .tag = MemoryTag::comm});
  if (copy_values) ops::copy_(staging, tensor);
  return staging;
}

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

void MpiCommunicator::all_to_all(const Tensor& input, const Tensor& output) {
  constexpr std::string_view kOp = "all_to_all";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "input", input);
  check_tensor(kOp, "output", output);
  check_same_dtype(kOp, input, output);
  if (input.numel() != output.numel() || input.numel() % size_ != 0 || overlaps(input, output))
    throw std::invalid_argument(fmt::format(
        "{}: input ({}) and output ({}) must be separate buffers of equal size in {} equal "
        "slices",
        kOp, describe(input), describe(output), size_));
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::all_to_all, input.nbytes(), input.nbytes(), size_);
  const int slice = int(input.numel() / size_);
  const MPI_Datatype datatype = mpi_datatype(input.dtype());
  check_mpi(
      MPI_Alltoall(input.raw_data(), slice, datatype, output.raw_data(), slice, datatype, comm_),
      kOp);
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

std::unique_ptr<Work> MpiCommunicator::send_async(const Tensor& tensor, int destination, int tag) {
  constexpr std::string_view kOp = "send";
  Clock::time_point start = Clock::now();
  check_point_to_point(kOp, "destination", tensor, destination, rank_, size_, tag);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::send, tensor.nbytes(), tensor.nbytes(), size_);
  auto work = std::make_unique<MpiWork>(kOp, counter, start);
  check_mpi(MPI_Isend(tensor.raw_data(), element_count(tensor), mpi_datatype(tensor.dtype()),
                      destination, tag, comm_, work->request()),
            kOp);
  work->hold({tensor});
  return work;
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

std::unique_ptr<Work> MpiCommunicator::recv_async(const Tensor& tensor, int source, int tag) {
  constexpr std::string_view kOp = "recv";
  Clock::time_point start = Clock::now();
  check_point_to_point(kOp, "source", tensor, source, rank_, size_, tag);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::recv, tensor.nbytes(), tensor.nbytes(), size_);
  MPI_Datatype datatype = mpi_datatype(tensor.dtype());
  auto work = std::make_unique<MpiWork>(kOp, counter, start);
  check_mpi(MPI_Irecv(tensor.raw_data(), element_count(tensor), datatype, source, tag, comm_,
                      work->request()),
            kOp);
  work->hold({tensor});
  work->cancel_when_abandoned();
  // A longer message fails the wait (MPI_ERR_TRUNCATE); a shorter one is caught here.
  work->on_complete([kOp, source, tag, tensor, datatype, request = work.get()] {
    int received_elements = 0;
    check_mpi(MPI_Get_count(&request->status(), datatype, &received_elements), kOp);
    if (received_elements != element_count(tensor))
      throw std::runtime_error(fmt::format(
          "{}: the message from rank {} (tag {}) holds {} elements; the receiving tensor ({}) "
          "expects {}",
          kOp, source, tag, received_elements, describe(tensor), tensor.numel()));
  });
  return work;
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
