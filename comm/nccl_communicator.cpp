// NcclCommunicator: argument checks (shared with MpiCommunicator, communicator_checks.h), the
// stream ordering of each NCCL call, its Work, and the stats. Every call: check, count, make the
// communication stream wait for the compute stream, launch, record a completion event; Work::wait
// makes the compute stream wait for that event and only then lets go of the tensors it held, so the
// caching allocator (which reuses blocks in compute-stream order) never recycles memory NCCL
// may still touch.
#include "comm/nccl_communicator.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "comm/communicator_checks.h"
#include "comm/mpi_work.h"
#include "comm/nccl_registry.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"
#include "cuda/check.h"
#include "cuda/device.h"

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

void check_nccl(ncclResult_t result, std::string_view op, ncclComm_t comm = nullptr) {
  if (result == ncclSuccess) return;
  const char* detail = comm != nullptr ? ncclGetLastError(comm) : "";
  throw std::runtime_error(fmt::format("{}: NCCL error: {}{}{}", op, ncclGetErrorString(result),
                                       (detail && *detail) ? ": " : "", detail ? detail : ""));
}

ncclDataType_t nccl_datatype(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    case DType::f16:
      return ncclFloat16;
    case DType::bf16:
      return ncclBfloat16;
    case DType::i32:
      return ncclInt32;
    case DType::i64:
      return ncclInt64;
    case DType::u8:
    case DType::i4x2:  // packed bytes: only moved, never reduced
      return ncclUint8;
    case DType::i8:
      return ncclInt8;
  }
  throw std::invalid_argument(fmt::format("nccl: no NCCL datatype for dtype {}", int(dtype)));
}

ncclRedOp_t nccl_op(ReduceOperation op) {
  switch (op) {
    case ReduceOperation::sum:
      return ncclSum;
    case ReduceOperation::max:
      return ncclMax;
    case ReduceOperation::min:
      return ncclMin;
  }
  throw std::invalid_argument("nccl: unknown ReduceOperation");
}

void check_tensor(std::string_view op, std::string_view role, const Tensor& tensor, int device) {
  detail::check_tensor(op, role, tensor, Device::cuda(device),
                       fmt::format("this NcclCommunicator works on tensors on cuda:{}", device));
}

void check_point_to_point(std::string_view op, std::string_view role, const Tensor& tensor,
                          int peer, int rank, int group_size, int tag, int device) {
  check_tensor(op, "tensor", tensor, device);
  check_peer(op, role, peer, rank, group_size, tag);
}

// NCCL work queued on the communication stream up to `done_`. wait() orders the compute stream
// after it, then runs on_complete (queued on the compute stream too: copying staged results
// back) and releases the held tensors.
class NcclWork final : public Work {
 public:
  NcclWork(CollectiveCounter& counter, Clock::time_point start, int device, ncclComm_t comm,
           std::vector<Tensor> held, std::function<void()> on_complete)
      : counter_(counter),
        start_(start),
        device_(device),
        comm_(comm),
        held_(std::move(held)),
        on_complete_(std::move(on_complete)) {}
  ~NcclWork() override {
    if (!done_) detail::wait_or_abort_job(*this);
  }

  void record(cudaStream_t comm_stream) { event_.record(comm_stream); }

  void wait() override {
    if (done_) return;
    cuda::DeviceGuard guard(device_);
    event_.wait(cuda::compute_stream(device_));
    done_ = true;
    if (on_complete_) on_complete_();
    held_.clear();
    counter_.seconds += seconds_since(start_);
  }

  bool test() override {
    if (done_) return true;
    cuda::DeviceGuard guard(device_);
    cudaError_t status = cudaEventQuery(event_.get());
    if (status == cudaErrorNotReady) return false;
    ZT_CUDA_CHECK(status);
    wait();
    return true;
  }

  // wait() only orders the compute stream, so a collective some rank never joins would show
  // much later, as a host synchronisation that never returns. This waits on the host for the
  // completion event instead, checking NCCL's asynchronous error (a peer or the network
  // failing) between polls, and gives up after `timeout_seconds`.
  bool wait_for(double timeout_seconds) override {
    Clock::time_point waiting_since = Clock::now();
    while (!test()) {
      ncclResult_t async_error = ncclSuccess;
      check_nccl(ncclCommGetAsyncError(comm_, &async_error), "wait_for", comm_);
      check_nccl(async_error, "collective in flight", comm_);
      if (seconds_since(waiting_since) >= timeout_seconds) return false;
      std::this_thread::yield();
    }
    return true;
  }

 private:
  CollectiveCounter& counter_;
  Clock::time_point start_;
  int device_;
  ncclComm_t comm_;
  std::vector<Tensor> held_;
  std::function<void()> on_complete_;
  cuda::Event event_;  // created after the caller made device_ current
  bool done_ = false;
};

// Queues `launch` on device's communication stream after everything on its compute stream,
// and returns the Work that finishes it.
std::unique_ptr<NcclWork> enqueue(int device, ncclComm_t comm, CollectiveCounter& counter,
                                  Clock::time_point start, std::vector<Tensor> held,
                                  const std::function<void(cudaStream_t)>& launch,
                                  std::function<void()> on_complete = {}) {
  cuda::DeviceGuard guard(device);
  cuda::DeviceContext& context = cuda::context(device);
  cuda::stream_wait(context.comm_stream, context.compute_stream);
  launch(context.comm_stream);
  auto work = std::make_unique<NcclWork>(counter, start, device, comm, std::move(held),
                                         std::move(on_complete));
  work->record(context.comm_stream);
  return work;
}

Tensor device_scratch(const Shape& shape, DType dtype, int device) {
  return empty(shape, {.dtype = dtype, .device = Device::cuda(device), .tag = MemoryTag::comm});
}

}  // namespace

NcclCommunicator::NcclCommunicator(ncclComm_t comm, int device, MpiCommunicator& host)
    : comm_(comm), device_(device), host_(host) {
  check_nccl(ncclCommUserRank(comm_, &rank_), "NcclCommunicator", comm_);
  check_nccl(ncclCommCount(comm_, &size_), "NcclCommunicator", comm_);
}

NcclCommunicator::NcclCommunicator(ncclComm_t comm, int device,
                                   std::unique_ptr<MpiCommunicator> host)
    : NcclCommunicator(comm, device, *host) {
  owned_host_ = std::move(host);
}

NcclCommunicator::~NcclCommunicator() {
  // Outstanding work was waited for by its Works (which must not outlive us); the stream
  // synchronisation makes sure NCCL's kernels are done before its buffers go. Errors can't be
  // thrown from here and the communicator is gone either way.
  cuda::DeviceGuard guard(device_);
  (void)cudaStreamSynchronize(cuda::context(device_).comm_stream);
  (void)ncclCommDestroy(comm_);
}

std::unique_ptr<Work> NcclCommunicator::all_reduce_async(const Tensor& tensor, ReduceOperation op) {
  constexpr std::string_view kOp = "all_reduce";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "tensor", tensor, device_);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::all_reduce, tensor.nbytes(), tensor.nbytes(), size_);
  if (size_ == 1 || tensor.numel() == 0) return std::make_unique<CompletedWork>(counter, start);
  return enqueue(device_, comm_, counter, start, {tensor}, [&](cudaStream_t stream) {
    check_nccl(ncclAllReduce(tensor.raw_data(), tensor.raw_data(), size_t(tensor.numel()),
                             nccl_datatype(tensor.dtype()), nccl_op(op), comm_, stream),
               kOp, comm_);
  });
}

std::unique_ptr<Work> NcclCommunicator::reduce_scatter_async(const Tensor& input,
                                                             const Tensor& output,
                                                             ReduceOperation op) {
  constexpr std::string_view kOp = "reduce_scatter";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "input", input, device_);
  check_tensor(kOp, "output", output, device_);
  check_same_dtype(kOp, input, output);
  if (input.numel() != output.numel() * size_)
    throw std::invalid_argument(fmt::format(
        "{}: input ({}) must hold {} slices of output ({}): expected {} elements, got {}", kOp,
        describe(input), size_, describe(output), output.numel() * size_, input.numel()));
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::reduce_scatter, input.nbytes(), input.nbytes(), size_);
  if (size_ == 1 || output.numel() == 0) {
    if (!input.is_same(output)) ops::copy_(output, input);
    return std::make_unique<CompletedWork>(counter, start);
  }
  // NCCL reduces in place when the output is the input's slice rank(); any other overlap
  // would be overwritten while still being read, so the result is staged.
  bool own_slice = input.storage() == output.storage() &&
                   output.storage_offset() == input.storage_offset() + rank_ * output.numel();
  Tensor target = output;
  std::function<void()> copy_back;
  if (overlaps(input, output) && !own_slice) {
    target = device_scratch(output.sizes(), output.dtype(), device_);
    copy_back = [output, target] { ops::copy_(output, target); };
  }
  return enqueue(
      device_, comm_, counter, start, {input, output, target},
      [&](cudaStream_t stream) {
        check_nccl(ncclReduceScatter(input.raw_data(), target.raw_data(), size_t(output.numel()),
                                     nccl_datatype(input.dtype()), nccl_op(op), comm_, stream),
                   kOp, comm_);
      },
      std::move(copy_back));
}

std::unique_ptr<Work> NcclCommunicator::all_gather_async(const Tensor& input,
                                                         const Tensor& output) {
  constexpr std::string_view kOp = "all_gather";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "input", input, device_);
  check_tensor(kOp, "output", output, device_);
  check_same_dtype(kOp, input, output);
  if (output.numel() != input.numel() * size_)
    throw std::invalid_argument(fmt::format(
        "{}: output ({}) must hold {} slices of input ({}): expected {} elements, got {}", kOp,
        describe(output), size_, describe(input), input.numel() * size_, output.numel()));
  if (overlaps(input, output) &&
      input.storage_offset() != output.storage_offset() + int64_t(rank_) * input.numel())
    throw std::invalid_argument(
        fmt::format("{}: input ({}) overlaps output ({}) but is not its slice {} (the only overlap "
                    "gathered in place)",
                    kOp, describe(input), describe(output), rank_));
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::all_gather, input.nbytes(), output.nbytes(), size_);
  if (input.numel() == 0) return std::make_unique<CompletedWork>(counter, start);
  // In place when input is output's slice rank(): NCCL's own in-place rule, same pointers.
  return enqueue(device_, comm_, counter, start, {input, output}, [&](cudaStream_t stream) {
    check_nccl(ncclAllGather(input.raw_data(), output.raw_data(), size_t(input.numel()),
                             nccl_datatype(input.dtype()), comm_, stream),
               kOp, comm_);
  });
}

std::unique_ptr<Work> NcclCommunicator::broadcast_async(const Tensor& tensor, int root) {
  constexpr std::string_view kOp = "broadcast";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "tensor", tensor, device_);
  check_rank(kOp, "root", root, size_);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::broadcast, tensor.nbytes(), tensor.nbytes(), size_);
  if (size_ == 1 || tensor.numel() == 0) return std::make_unique<CompletedWork>(counter, start);
  return enqueue(device_, comm_, counter, start, {tensor}, [&](cudaStream_t stream) {
    check_nccl(ncclBroadcast(tensor.raw_data(), tensor.raw_data(), size_t(tensor.numel()),
                             nccl_datatype(tensor.dtype()), root, comm_, stream),
               kOp, comm_);
  });
}

void NcclCommunicator::all_to_all(const Tensor& input, const Tensor& output) {
  constexpr std::string_view kOp = "all_to_all";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "input", input, device_);
  check_tensor(kOp, "output", output, device_);
  check_same_dtype(kOp, input, output);
  if (input.numel() != output.numel() || input.numel() % size_ != 0 || overlaps(input, output))
    throw std::invalid_argument(fmt::format(
        "{}: input ({}) and output ({}) must be separate buffers of equal size in {} equal "
        "slices",
        kOp, describe(input), describe(output), size_));
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::all_to_all, input.nbytes(), input.nbytes(), size_);
  if (size_ == 1 || input.numel() == 0) {
    if (input.numel() > 0) ops::copy_(output, input);
    counter.seconds += seconds_since(start);
    return;
  }
  const size_t slice = size_t(input.numel() / size_), slice_bytes = input.nbytes() / size_t(size_);
  const ncclDataType_t datatype = nccl_datatype(input.dtype());
  const char* sent = static_cast<const char*>(input.raw_data());
  char* received = static_cast<char*>(output.raw_data());
  enqueue(device_, comm_, counter, start, {input, output}, [&](cudaStream_t stream) {
    // Every send and receive is queued before NCCL starts any, so no order of peers can wait on
    // itself; the group is closed even when a call fails, so that the next call is not inside it.
    check_nccl(ncclGroupStart(), kOp, comm_);
    ncclResult_t first_error = ncclSuccess;
    for (int peer = 0; peer < size_ && first_error == ncclSuccess; ++peer) {
      first_error =
          ncclSend(sent + size_t(peer) * slice_bytes, slice, datatype, peer, comm_, stream);
      if (first_error == ncclSuccess)
        first_error =
            ncclRecv(received + size_t(peer) * slice_bytes, slice, datatype, peer, comm_, stream);
    }
    const ncclResult_t closed = ncclGroupEnd();
    check_nccl(first_error, kOp, comm_);
    check_nccl(closed, kOp, comm_);
  })->wait();
}

void NcclCommunicator::reduce(const Tensor& tensor, int root, ReduceOperation op) {
  constexpr std::string_view kOp = "reduce";
  Clock::time_point start = Clock::now();
  check_tensor(kOp, "tensor", tensor, device_);
  check_rank(kOp, "root", root, size_);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::reduce, tensor.nbytes(), tensor.nbytes(), size_);
  if (size_ == 1 || tensor.numel() == 0) {
    counter.seconds += seconds_since(start);
    return;
  }
  // NCCL writes the receive buffer on the root only, so other ranks' tensors stay as they were.
  enqueue(device_, comm_, counter, start, {tensor}, [&](cudaStream_t stream) {
    check_nccl(ncclReduce(tensor.raw_data(), tensor.raw_data(), size_t(tensor.numel()),
                          nccl_datatype(tensor.dtype()), nccl_op(op), root, comm_, stream),
               kOp, comm_);
  })->wait();
}

void NcclCommunicator::barrier() {
  Clock::time_point start = Clock::now();
  CollectiveCounter& counter = count_call(stats_, CollectiveKind::barrier, 0, 0, size_);
  if (size_ == 1) {
    counter.seconds += seconds_since(start);
    return;
  }
  Tensor token = device_scratch({1}, DType::f32, device_);
  cuda::DeviceGuard guard(device_);
  cuda::DeviceContext& context = cuda::context(device_);
  cuda::stream_wait(context.comm_stream, context.compute_stream);
  check_nccl(ncclAllReduce(token.raw_data(), token.raw_data(), 1, ncclFloat32, ncclSum, comm_,
                           context.comm_stream),
             "barrier", comm_);
  // The host waits: a barrier is a host-side rendezvous.
  ZT_CUDA_CHECK(cudaStreamSynchronize(context.comm_stream));
  counter.seconds += seconds_since(start);
}

void NcclCommunicator::send(const Tensor& tensor, int destination, int tag) {
  constexpr std::string_view kOp = "send";
  Clock::time_point start = Clock::now();
  check_point_to_point(kOp, "destination", tensor, destination, rank_, size_, tag, device_);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::send, tensor.nbytes(), tensor.nbytes(), size_);
  // The element count goes first (not counted: the stats count the payload, as MPI's).
  Tensor header = from_values({double(tensor.numel())}, {1},
                              {.dtype = DType::i64, .device = Device::cuda(device_)});
  enqueue(device_, comm_, counter, start, {tensor, header}, [&](cudaStream_t stream) {
    check_nccl(ncclSend(header.raw_data(), 1, ncclInt64, destination, comm_, stream), kOp, comm_);
    if (tensor.numel() > 0)
      check_nccl(ncclSend(tensor.raw_data(), size_t(tensor.numel()), nccl_datatype(tensor.dtype()),
                          destination, comm_, stream),
                 kOp, comm_);
  })->wait();
}

void NcclCommunicator::recv(const Tensor& tensor, int source, int tag) {
  constexpr std::string_view kOp = "recv";
  Clock::time_point start = Clock::now();
  check_point_to_point(kOp, "source", tensor, source, rank_, size_, tag, device_);
  CollectiveCounter& counter =
      count_call(stats_, CollectiveKind::recv, tensor.nbytes(), tensor.nbytes(), size_);
  // The steps are timed together: their Works add to a scratch counter, the call to `counter`.
  CollectiveCounter steps;
  Tensor header = device_scratch({1}, DType::i64, device_);
  enqueue(device_, comm_, steps, start, {header}, [&](cudaStream_t stream) {
    check_nccl(ncclRecv(header.raw_data(), 1, ncclInt64, source, comm_, stream), kOp, comm_);
  })->wait();
  int64_t sent = int64_t(header.item());  // waits for the header on the host
  // A message of another length is still received (into scratch), so that the pair stays in
  // step, and then reported.
  Tensor target = sent == tensor.numel() ? tensor : device_scratch({sent}, tensor.dtype(), device_);
  if (sent > 0) {
    enqueue(device_, comm_, steps, start, {target}, [&](cudaStream_t stream) {
      check_nccl(ncclRecv(target.raw_data(), size_t(sent), nccl_datatype(tensor.dtype()), source,
                          comm_, stream),
                 kOp, comm_);
    })->wait();
  }
  counter.seconds += seconds_since(start);
  if (sent > tensor.numel())
    throw std::runtime_error(fmt::format(
        "{}: the message from rank {} (tag {}) is longer than the receiving tensor ({})", kOp,
        source, tag, describe(tensor)));
  if (sent != tensor.numel())
    throw std::runtime_error(fmt::format(
        "{}: the message from rank {} (tag {}) holds {} elements; the receiving tensor ({}) "
        "expects {}",
        kOp, source, tag, sent, describe(tensor), tensor.numel()));
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) {
  if (color < 0) throw std::invalid_argument(fmt::format("split: color {} must be >= 0", color));
  std::unique_ptr<MpiCommunicator> host_group = host_.split_group(color, key);
  cuda::DeviceGuard guard(device_);
  ncclComm_t group = nullptr;
  check_nccl(ncclCommSplit(comm_, color, key, &group, nullptr), "split", comm_);
  return std::make_unique<NcclCommunicator>(group, device_, std::move(host_group));
}

std::unique_ptr<NcclCommunicator> make_nccl_communicator(MpiCommunicator& world) {
  constexpr std::string_view kOp = "make_nccl_communicator";
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(world.mpi_comm(), MPI_COMM_TYPE_SHARED, world.rank(), MPI_INFO_NULL, &node);
  int local_rank = 0, local_size = 1;
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
  int devices = cuda::device_count();
  // Two ranks on one device would deadlock or be refused by NCCL: every rank needs its own.
  int usable = local_size <= devices ? 1 : 0, all_usable = 0;
  MPI_Allreduce(&usable, &all_usable, 1, MPI_INT, MPI_MIN, world.mpi_comm());
  if (!all_usable)
    throw std::runtime_error(fmt::format(
        "{}: NCCL needs one CUDA device per rank; rank {} is one of {} rank(s) on its node, which "
        "has {} CUDA device(s){}",
        kOp, world.rank(), local_size, devices,
        usable ? " (enough here; another node has too few)" : ""));
  ncclUniqueId id{};
  if (world.rank() == 0) check_nccl(ncclGetUniqueId(&id), kOp);
  MPI_Bcast(&id, int(sizeof(id)), MPI_BYTE, 0, world.mpi_comm());
  cuda::DeviceGuard guard(local_rank);
  ncclComm_t comm = nullptr;
  check_nccl(ncclCommInitRank(&comm, world.size(), id, world.rank()), kOp);
  return std::make_unique<NcclCommunicator>(comm, local_rank, world);
}

namespace {
// This file is linked only from the CUDA archive, whole, so this runs in every program linked
// with it and in none other (comm/nccl_registry.h).
[[maybe_unused]] const bool nccl_maker_registered = [] {
  register_nccl_maker([](MpiCommunicator& world) {
    std::unique_ptr<NcclCommunicator> nccl = make_nccl_communicator(world);
    int device_index = nccl->device_index();
    return DeviceCommunicator{std::move(nccl), device_index};
  });
  return true;
}();
}  // namespace

}  // namespace zt::comm
