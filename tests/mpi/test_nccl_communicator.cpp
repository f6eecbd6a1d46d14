// Multi-rank tests of NcclCommunicator: the checks of test_communicator.cpp (collectives for
// every dtype, op and odd size, in-place forms, async order, bounded waits, send/recv, split, the
// ring-model stats, argument errors) on device tensors. They run when the build has CUDA (ZT_NCCL)
// and every rank has a GPU of its own; otherwise every case reports why it was skipped and passes.
#include <doctest/doctest.h>

#if defined(ZT_NCCL)

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/compressed_allreduce.h"
#include "comm/nccl_communicator.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"
#include "tests/mpi/communicator_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/requirements.h"

namespace zt::comm {
namespace {

using namespace communicator_testing;

// The NCCL communicator over the test world, made by every rank in the first test case (each
// case runs on every rank in order, so the collective creation lines up). The cases run only
// when every rank has a GPU of its own (ZT_NEEDS_GPU_PER_RANK), so a failure to make it is a
// failure of the case. Never destroyed: its teardown would race MPI's and the CUDA runtime's.
NcclCommunicator* nccl_world() {
  static NcclCommunicator* world = make_nccl_communicator(testing::test_world()).release();
  return world;
}

Device gpu() {
  return Device::cuda(nccl_world()->device_index());
}

// communicator_testing::rank_tensor, on this rank's GPU.
Tensor gpu_rank_tensor(int rank, int64_t elems, DType dtype) {
  return rank_tensor(rank, elems, dtype).to(gpu());
}

Tensor device_zeros(int64_t elems, DType dtype = DType::f32) {
  return zeros({elems}, {.dtype = dtype, .device = gpu()});
}

Tensor gather_input(int rank, int64_t elems, DType dtype) {
  std::vector<double> values(static_cast<size_t>(elems));
  for (int64_t i = 0; i < elems; ++i) values[size_t(i)] = rank * 10 + i % 10;
  return from_values(values, {elems}, {.dtype = dtype}).to(gpu());
}

std::vector<double> gathered_values(int ranks, int64_t elems) {
  std::vector<double> values;
  for (int rank = 0; rank < ranks; ++rank)
    for (int64_t i = 0; i < elems; ++i) values.push_back(rank * 10 + i % 10);
  return values;
}

TEST_SUITE("nccl") {
  TEST_CASE("nccl_all_reduce_equals_closed_form_for_every_dtype_op_and_odd_size" *
            ZT_NEEDS_GPU_PER_RANK) {
    Communicator& world = *nccl_world();
    CHECK(world.name() == "nccl");
    for (DType dtype : kReducibleDTypes)
      for (ReduceOperation op : kOperations)
        for (int64_t elems : kOddSizes) {
          CAPTURE(dtype_name(dtype));
          CAPTURE(op_name(op));
          CAPTURE(elems);
          std::vector<double> expected(static_cast<size_t>(elems));
          for (int64_t i = 0; i < elems; ++i)
            expected[size_t(i)] = reduced_value(op, world.size(), i);
          Tensor blocking = gpu_rank_tensor(world.rank(), elems, dtype);
          world.all_reduce(blocking, op);
          CHECK(blocking.to_vector() == expected);
          Tensor async = gpu_rank_tensor(world.rank(), elems, dtype);
          std::unique_ptr<Work> work = world.all_reduce_async(async, op);
          work->wait();
          CHECK(work->test());
          CHECK(async.to_vector() == expected);
        }
  }

  TEST_CASE("nccl_reduce_scatter_gives_each_rank_its_slice_also_in_place" * ZT_NEEDS_GPU_PER_RANK) {
    Communicator& world = *nccl_world();
    for (DType dtype : kReducibleDTypes)
      for (int64_t slice : kOddSizes) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(slice);
        std::vector<double> expected(static_cast<size_t>(slice));
        for (int64_t i = 0; i < slice; ++i)
          expected[size_t(i)] =
              reduced_value(ReduceOperation::sum, world.size(), world.rank() * slice + i);
        Tensor input = gpu_rank_tensor(world.rank(), slice * world.size(), dtype);
        Tensor output = device_zeros(slice, dtype);
        std::unique_ptr<Work> work = world.reduce_scatter_async(input, output);
        while (!work->test()) {
        }
        CHECK(output.to_vector() == expected);
        Tensor own = ops::narrow(input, 0, world.rank() * slice, slice);
        world.reduce_scatter(input, own);
        CHECK(own.to_vector() == expected);
      }
    // An output overlapping the input elsewhere than its own slice is staged.
    int64_t slice = 17;
    Tensor input = gpu_rank_tensor(world.rank(), slice * world.size(), DType::f32);
    Tensor first = ops::narrow(input, 0, 0, slice);
    world.reduce_scatter(input, first);
    std::vector<double> expected(static_cast<size_t>(slice));
    for (int64_t i = 0; i < slice; ++i)
      expected[size_t(i)] =
          reduced_value(ReduceOperation::sum, world.size(), world.rank() * slice + i);
    CHECK(first.to_vector() == expected);
  }

  TEST_CASE("nccl_all_gather_and_broadcast_for_every_dtype" * ZT_NEEDS_GPU_PER_RANK) {
    Communicator& world = *nccl_world();
    for (DType dtype : kAllDTypes)
      for (int64_t elems : kOddSizes) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(elems);
        Tensor output = device_zeros(elems * world.size(), dtype);
        world.all_gather(gather_input(world.rank(), elems, dtype), output);
        CHECK(output.to_vector() == gathered_values(world.size(), elems));
        Tensor full = device_zeros(elems * world.size(), dtype);
        Tensor own = ops::narrow(full, 0, world.rank() * elems, elems);
        ops::copy_(own, gather_input(world.rank(), elems, dtype));
        world.all_gather_async(own, full)->wait();
        CHECK(full.to_vector() == gathered_values(world.size(), elems));
        for (int root : {0, world.size() - 1}) {
          Tensor expected = gpu_rank_tensor(root, elems, dtype);
          Tensor tensor = world.rank() == root ? expected.clone() : device_zeros(elems, dtype);
          world.broadcast(tensor, root);
          CHECK(tensor.to_vector() == expected.to_vector());
        }
      }
  }

  TEST_CASE("nccl_reduce_lands_on_root_and_leaves_other_ranks_unchanged" * ZT_NEEDS_GPU_PER_RANK) {
    Communicator& world = *nccl_world();
    int root = world.size() / 2;
    for (DType dtype : kReducibleDTypes)
      for (ReduceOperation op : kOperations) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(op_name(op));
        Tensor tensor = gpu_rank_tensor(world.rank(), 17, dtype);
        world.reduce(tensor, root, op);
        std::vector<double> expected(17);
        for (int64_t i = 0; i < 17; ++i)
          expected[size_t(i)] = world.rank() == root ? reduced_value(op, world.size(), i)
                                                     : rank_value(world.rank(), i);
        CHECK(tensor.to_vector() == expected);
      }
  }

  TEST_CASE("nccl_async_collectives_in_flight_complete_in_any_wait_order" * ZT_NEEDS_GPU_PER_RANK) {
    Communicator& world = *nccl_world();
    Tensor first = gpu_rank_tensor(world.rank(), int64_t(1) << 18, DType::f32);
    Tensor second = gpu_rank_tensor(world.rank(), 3, DType::i64);
    Tensor gathered = device_zeros(17 * world.size(), DType::f16);
    std::unique_ptr<Work> first_work = world.all_reduce_async(first);
    std::unique_ptr<Work> second_work = world.all_reduce_async(second, ReduceOperation::max);
    std::unique_ptr<Work> gather_work =
        world.all_gather_async(gather_input(world.rank(), 17, DType::f16), gathered);
    gather_work->wait();
    second_work->wait();
    { std::unique_ptr<Work> dropped = std::move(first_work); }  // destroying waits
    std::vector<double> expected(size_t(1) << 18);
    for (size_t i = 0; i < expected.size(); ++i)
      expected[i] = reduced_value(ReduceOperation::sum, world.size(), int64_t(i));
    CHECK(first.to_vector() == expected);
    CHECK(second.to_vector() ==
          std::vector<double>{double(world.size()), 2.0 * world.size(), 3.0 * world.size()});
    CHECK(gathered.to_vector() == gathered_values(world.size(), 17));
  }

  TEST_CASE("nccl_wait_for_gives_up_while_a_rank_has_not_joined_and_succeeds_once_it_has" *
            ZT_NEEDS_GPU_PER_RANK) {
    // As the MPI case: the other ranks launch their gather only when rank 0, after its bounded
    // wait, tells them to over the host communicator.
    Communicator& world = *nccl_world();
    Communicator& host = world.host_communicator();
    Tensor gathered = device_zeros(5 * world.size());
    Tensor go = zeros({1});
    if (world.rank() == 0) {
      std::unique_ptr<Work> work = world.all_gather_async(gather_input(0, 5, DType::f32), gathered);
      bool finished_alone = work->wait_for(0.05);
      for (int peer = 1; peer < world.size(); ++peer) host.send(go, peer);
      if (world.size() > 1) CHECK_FALSE(finished_alone);  // alone, it may finish at once
      CHECK(work->wait_for(60.0));
      CHECK(work->test());
    } else {
      host.recv(go, 0);
      world.all_gather_async(gather_input(world.rank(), 5, DType::f32), gathered)->wait();
    }
    CHECK(gathered.to_vector() == gathered_values(world.size(), 5));
  }

  TEST_CASE("nccl_send_recv_ring_and_length_mismatch" * ZT_NEEDS_GPU_PER_RANK) {
    Communicator& world = *nccl_world();
    if (world.size() == 1) return;
    int next = (world.rank() + 1) % world.size();
    int previous = (world.rank() + world.size() - 1) % world.size();
    for (DType dtype : kAllDTypes) {
      CAPTURE(dtype_name(dtype));
      Tensor incoming = device_zeros(129, dtype);
      if (world.rank() % 2 == 0) {
        world.send(gpu_rank_tensor(world.rank(), 129, dtype), next, 7);
        world.recv(incoming, previous, 7);
      } else {
        world.recv(incoming, previous, 7);
        world.send(gpu_rank_tensor(world.rank(), 129, dtype), next, 7);
      }
      CHECK(incoming.to_vector() == gpu_rank_tensor(previous, 129, dtype).to_vector());
    }
    std::string longer, shorter;
    world.reset_stats();
    if (world.rank() == 0) {
      world.send(gpu_rank_tensor(0, 5, DType::f32), 1, 3);
      world.send(gpu_rank_tensor(0, 5, DType::f32), 1, 4);
      CHECK(world.stats()[CollectiveKind::send].payload_bytes == 40);
    } else if (world.rank() == 1) {
      longer = error_of([&] { world.recv(device_zeros(4), 0, 3); });
      shorter = error_of([&] { world.recv(device_zeros(6), 0, 4); });
      CHECK(world.stats()[CollectiveKind::recv].payload_bytes == 0);
    }
    world.barrier();
    if (world.rank() == 1) {
      CHECK(longer.find("recv: the message from rank 0 (tag 3) is longer") == 0);
      CHECK(shorter.find("holds 5 elements") != std::string::npos);
      CHECK(shorter.find("f32 [6]") != std::string::npos);
    }
    world.reset_stats();
  }

  TEST_CASE("nccl_split_into_even_and_odd_groups_reduces_within_each_group" *
            ZT_NEEDS_GPU_PER_RANK) {
    Communicator& world = *nccl_world();
    int parity = world.rank() % 2;
    std::unique_ptr<Communicator> group = world.split(parity, world.rank());
    int expected_size = (world.size() + 1 - parity) / 2;
    CHECK(group->size() == expected_size);
    CHECK(group->rank() == world.rank() / 2);
    CHECK(group->name() == "nccl");
    Tensor value = from_values({double(world.rank())}, {1}, {.dtype = DType::i64}).to(gpu());
    group->all_reduce(value);
    double expected_sum = 0;
    for (int rank = parity; rank < world.size(); rank += 2) expected_sum += rank;
    CHECK(value.item() == expected_sum);
    std::unique_ptr<Communicator> reversed = world.split(parity, -world.rank());
    CHECK(reversed->rank() == expected_size - 1 - world.rank() / 2);
    CHECK(group->stats()[CollectiveKind::all_reduce].calls == 1);
    // Host communicators: the MPI world it was made from, and the same split of it.
    CHECK(&world.host_communicator() == &testing::test_world());
    Communicator& host_group = group->host_communicator();
    CHECK(host_group.name() == "mpi");
    CHECK(host_group.size() == expected_size);
    CHECK(host_group.rank() == group->rank());
    Tensor flag = from_values({1.0}, {1});
    host_group.all_reduce(flag);
    CHECK(flag.item() == double(expected_size));
  }

  TEST_CASE("nccl_stats_count_like_mpi_and_16_bit_sums_are_native" * ZT_NEEDS_GPU_PER_RANK) {
    Communicator& world = *nccl_world();
    int64_t ranks = world.size();
    world.reset_stats();
    world.all_reduce(device_zeros(129));
    world.all_reduce_async(device_zeros(17, DType::f16))->wait();
    world.reduce_scatter(device_zeros(17 * ranks), device_zeros(17));
    world.all_gather(device_zeros(3, DType::f64), device_zeros(3 * ranks, DType::f64));
    world.broadcast(device_zeros(5, DType::i64), 0);
    world.reduce(device_zeros(3, DType::u8), 0);
    world.barrier();
    const CommStats& stats = world.stats();
    CHECK(stats[CollectiveKind::all_reduce].calls == 2);
    CHECK(stats[CollectiveKind::all_reduce].buffer_bytes == 516 + 34);
    CHECK(stats[CollectiveKind::all_reduce].payload_bytes ==
          2 * 516 * (ranks - 1) / ranks + 2 * 34 * (ranks - 1) / ranks);
    CHECK(stats[CollectiveKind::reduce_scatter].payload_bytes == 68 * (ranks - 1));
    CHECK(stats[CollectiveKind::all_gather].payload_bytes == 24 * (ranks - 1));
    int64_t shared = ranks > 1 ? 1 : 0;
    CHECK(stats[CollectiveKind::broadcast].payload_bytes == 40 * shared);
    CHECK(stats[CollectiveKind::reduce].payload_bytes == 3 * shared);
    CHECK(stats[CollectiveKind::barrier].calls == 1);
    CHECK(stats[CollectiveKind::barrier].payload_bytes == 0);
    // NCCL sums f16 in f16 (no f32 staging): 2048 + 1 + ... may stay at 2048 where MPI's f32
    // rank-order sum rounds once. Only the bounds are the same.
    Tensor values = zeros({8 * ranks}, {.dtype = DType::f16}).to(gpu());
    ops::copy_(values, full({8 * ranks}, world.rank() == 0 ? 2048.0 : 1.0, {.dtype = DType::f16}));
    world.all_reduce(values);
    for (double value : values.to_vector()) {
      CHECK(value >= 2048.0);
      CHECK(value <= 2048.0 + double(ranks));
    }
    world.reset_stats();
  }

  TEST_CASE("nccl_all_to_all_moves_slice_s_of_rank_r_to_slice_r_of_rank_s" *
            ZT_NEEDS_GPU_PER_RANK) {
    Communicator& world = *nccl_world();
    const int ranks = world.size();
    for (DType dtype : {DType::u8, DType::f32}) {
      CAPTURE(dtype_name(dtype));
      const int64_t slice = 5;  // odd, so that slices start at unaligned offsets
      std::vector<double> sent, expected;
      for (int peer = 0; peer < ranks; ++peer)
        for (int64_t i = 0; i < slice; ++i) {
          sent.push_back(double((world.rank() * 7 + peer * 3 + i) % 100));
          expected.push_back(double((peer * 7 + world.rank() * 3 + i) % 100));
        }
      Tensor input = from_values(sent, {slice * ranks}, {.dtype = dtype}).to(gpu());
      Tensor output = device_zeros(slice * ranks, dtype);
      world.reset_stats();
      world.all_to_all(input, output);
      CHECK(output.to_vector() == expected);
      CHECK(world.stats()[CollectiveKind::all_to_all].payload_bytes ==
            int64_t(input.nbytes()) * (ranks - 1) / ranks);
    }
    CHECK(error_of([&] {
            world.all_to_all(device_zeros(3 * ranks + 1), device_zeros(3 * ranks + 1));
          }).find("must be separate buffers of equal size") != std::string::npos);
    world.reset_stats();
  }

  TEST_CASE("nccl_compressed_all_reduce_on_device_buffers_equals_the_mpi_one_on_host_buffers" *
            ZT_NEEDS_GPU_PER_RANK) {
    // The same arithmetic on the host either way: only the exchange moves to the device, so
    // results and both errors are equal bit for bit, and so is the traffic.
    Communicator& world = *nccl_world();
    const int64_t numel = 1001;  // not a multiple of 8N: padding
    CompressedAllReduce over_nccl(world, numel), over_mpi(testing::test_world(), numel);
    for (int call = 0; call < 3; ++call) {
      CAPTURE(call);
      std::vector<double> values(static_cast<size_t>(numel));
      for (int64_t i = 0; i < numel; ++i)
        values[size_t(i)] = std::sin(0.37 * double(i + 1) * double(world.rank() + 1) + call);
      Tensor host = from_values(values, {numel});
      Tensor device = host.to(gpu());
      world.reset_stats();
      const CommStats before = testing::test_world().stats();
      over_nccl.average(device);
      over_mpi.average(host);
      CHECK(device.device() == gpu());
      CHECK(device.to_vector() == host.to_vector());
      CHECK(over_nccl.worker_error().to_vector() == over_mpi.worker_error().to_vector());
      CHECK(over_nccl.server_error().to_vector() == over_mpi.server_error().to_vector());
      CHECK(world.stats().total_payload_bytes() ==
            CommStats::difference(testing::test_world().stats(), before).total_payload_bytes());
    }
    world.reset_stats();
  }

  TEST_CASE("nccl_argument_errors_name_the_op_and_the_shapes" * ZT_NEEDS_GPU_PER_RANK) {
    Communicator& world = *nccl_world();
    int ranks = world.size();
    CHECK(error_of([&] { world.all_reduce(zeros({2})); })
              .find("all_reduce: tensor (f32 [2]) is on cpu; this NcclCommunicator works on "
                    "tensors on cuda:") == 0);
    Tensor matrix = zeros({3, 4}, {.device = gpu()});
    CHECK(error_of([&] { world.all_reduce(matrix.t()); }) ==
          "all_reduce: tensor (f32 [4, 3], strides [1, 4]) must be contiguous");
    CHECK(error_of([&] {
            world.reduce_scatter(device_zeros(10 * ranks + 1), device_zeros(10));
          }).find(fmt::format("must hold {} slices of output (f32 [10])", ranks)) !=
          std::string::npos);
    CHECK(error_of([&] { world.broadcast(device_zeros(2), ranks); }) ==
          fmt::format("broadcast: root {} is outside the group of {} ranks", ranks, ranks));
    CHECK(error_of([&] { (void)world.split(-1, 0); }) == "split: color -1 must be >= 0");
    world.barrier();
  }
}

}  // namespace
}  // namespace zt::comm

#endif
