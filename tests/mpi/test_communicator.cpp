// Multi-rank tests of MpiCommunicator: every collective, blocking and async, against values
// computed locally from the rank numbers, for every dtype that applies and odd sizes; split
// groups and a send/recv ring (stats, 16-bit reductions, argument errors and the chunked
// rank-order reduction: tests/mpi/test_communicator_accounting.cpp). Every rank runs every
// collective; checks come after it, so a failing check never leaves a rank behind.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/factory.h"
#include "core/half.h"
#include "core/ops/view.h"
#include "tests/mpi/communicator_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::comm {
namespace {

using testing::test_world;
using namespace communicator_testing;

TEST_CASE("all_reduce_equals_closed_form_for_every_dtype_op_and_odd_size") {
  Communicator& world = test_world();
  int ranks = world.size();
  for (DType dtype : kReducibleDTypes)
    for (ReduceOperation op : kOperations)
      for (int64_t elems : kOddSizes) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(op_name(op));
        CAPTURE(elems);
        std::vector<double> expected(static_cast<size_t>(elems));
        for (int64_t i = 0; i < elems; ++i) expected[size_t(i)] = reduced_value(op, ranks, i);
        Tensor blocking = rank_tensor(world.rank(), elems, dtype);
        world.all_reduce(blocking, op);
        CHECK(holds_values(blocking, expected));
        Tensor async = rank_tensor(world.rank(), elems, dtype);
        std::unique_ptr<Work> work = world.all_reduce_async(async, op);
        work->wait();
        CHECK(work->test());
        CHECK(holds_values(async, expected));
        CHECK(async.dtype() == dtype);
      }
}

TEST_CASE("reduce_scatter_gives_each_rank_its_reduced_slice") {
  Communicator& world = test_world();
  int ranks = world.size();
  for (DType dtype : kReducibleDTypes)
    for (ReduceOperation op : kOperations)
      for (int64_t slice_elems : kOddSizes) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(op_name(op));
        CAPTURE(slice_elems);
        std::vector<double> expected(static_cast<size_t>(slice_elems));
        for (int64_t i = 0; i < slice_elems; ++i)
          expected[size_t(i)] = reduced_value(op, ranks, world.rank() * slice_elems + i);
        Tensor input = rank_tensor(world.rank(), slice_elems * ranks, dtype);
        Tensor output = zeros({slice_elems}, {.dtype = dtype});
        world.reduce_scatter(input, output, op);
        CHECK(holds_values(output, expected));
        Tensor async_output = zeros({slice_elems}, {.dtype = dtype});
        std::unique_ptr<Work> work = world.reduce_scatter_async(input, async_output, op);
        while (!work->test()) {
        }
        CHECK(holds_values(async_output, expected));
      }
}

TEST_CASE("reduce_scatter_into_own_slice_of_the_input_is_staged") {
  Communicator& world = test_world();
  int64_t slice_elems = 17;
  Tensor flat = rank_tensor(world.rank(), slice_elems * world.size(), DType::f32);
  Tensor own_slice = ops::narrow(flat, 0, world.rank() * slice_elems, slice_elems);
  world.reduce_scatter(flat, own_slice);
  std::vector<double> expected(static_cast<size_t>(slice_elems));
  for (int64_t i = 0; i < slice_elems; ++i)
    expected[size_t(i)] =
        reduced_value(ReduceOperation::sum, world.size(), world.rank() * slice_elems + i);
  CHECK(holds_values(own_slice, expected));
}

// Rank r's all_gather input element i: r * 10 + i % 10 (at most 79: fits u8 and f16 exactly).
Tensor gather_input(int rank, int64_t elems, DType dtype) {
  std::vector<double> values(static_cast<size_t>(elems));
  for (int64_t i = 0; i < elems; ++i) values[size_t(i)] = rank * 10 + i % 10;
  return from_values(values, {elems}, {.dtype = dtype});
}

std::vector<double> gathered_values(int ranks, int64_t elems) {
  std::vector<double> values;
  for (int rank = 0; rank < ranks; ++rank)
    for (int64_t i = 0; i < elems; ++i) values.push_back(rank * 10 + i % 10);
  return values;
}

TEST_CASE("all_gather_concatenates_every_rank_slice_for_every_dtype") {
  Communicator& world = test_world();
  for (DType dtype : kAllDTypes)
    for (int64_t elems : kOddSizes) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(elems);
      Tensor input = gather_input(world.rank(), elems, dtype);
      Tensor output = zeros({elems * world.size()}, {.dtype = dtype});
      world.all_gather(input, output);
      CHECK(holds_values(output, gathered_values(world.size(), elems)));
      Tensor async_output = zeros({elems * world.size()}, {.dtype = dtype});
      world.all_gather_async(input, async_output)->wait();
      CHECK(holds_values(async_output, gathered_values(world.size(), elems)));
    }
}

TEST_CASE("all_gather_in_place_from_own_slice_of_the_output") {
  Communicator& world = test_world();
  int64_t elems = 129;
  Tensor full = zeros({elems * world.size()}, {.dtype = DType::bf16});
  Tensor own_slice = ops::narrow(full, 0, world.rank() * elems, elems);
  ops::copy_(own_slice, gather_input(world.rank(), elems, DType::bf16));
  world.all_gather(own_slice, full);
  CHECK(holds_values(full, gathered_values(world.size(), elems)));
}

TEST_CASE("broadcast_copies_root_tensor_to_every_rank_for_every_dtype") {
  Communicator& world = test_world();
  for (int root : {0, world.size() - 1})
    for (DType dtype : kAllDTypes)
      for (int64_t elems : kOddSizes) {
        CAPTURE(root);
        CAPTURE(dtype_name(dtype));
        CAPTURE(elems);
        Tensor expected = rank_tensor(root, elems, dtype);
        Tensor blocking =
            world.rank() == root ? expected.clone() : zeros({elems}, {.dtype = dtype});
        world.broadcast(blocking, root);
        CHECK(holds_values(blocking, expected.to_vector()));
        Tensor async = world.rank() == root ? expected.clone() : zeros({elems}, {.dtype = dtype});
        world.broadcast_async(async, root)->wait();
        CHECK(holds_values(async, expected.to_vector()));
      }
}

TEST_CASE("reduce_lands_on_root_and_leaves_other_ranks_unchanged") {
  Communicator& world = test_world();
  int root = world.size() / 2;
  for (DType dtype : kReducibleDTypes)
    for (ReduceOperation op : kOperations) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(op_name(op));
      int64_t elems = 17;
      Tensor tensor = rank_tensor(world.rank(), elems, dtype);
      world.reduce(tensor, root, op);
      std::vector<double> expected(static_cast<size_t>(elems));
      for (int64_t i = 0; i < elems; ++i)
        expected[size_t(i)] =
            world.rank() == root ? reduced_value(op, world.size(), i) : rank_value(world.rank(), i);
      CHECK(holds_values(tensor, expected));
    }
}

TEST_CASE("large_buffers_take_the_bulk_transfer_path_correctly") {
  // 1 MiB all_reduce and 256 KiB-per-rank all_gather: past the shared-memory eager limit, so
  // Open MPI's single-copy / rendezvous path is exercised too.
  Communicator& world = test_world();
  int64_t elems = int64_t(1) << 18;
  Tensor tensor = rank_tensor(world.rank(), elems, DType::f32);
  world.all_reduce(tensor);
  std::vector<double> expected(static_cast<size_t>(elems));
  for (int64_t i = 0; i < elems; ++i)
    expected[size_t(i)] = reduced_value(ReduceOperation::sum, world.size(), i);
  CHECK(holds_values(tensor, expected));
  int64_t slice_elems = int64_t(1) << 16;
  Tensor gathered = zeros({slice_elems * world.size()}, {.dtype = DType::f32});
  world.all_gather(gather_input(world.rank(), slice_elems, DType::f32), gathered);
  CHECK(holds_values(gathered, gathered_values(world.size(), slice_elems)));
}

TEST_CASE("several_async_collectives_in_flight_complete_in_any_wait_order") {
  Communicator& world = test_world();
  Tensor first = rank_tensor(world.rank(), 129, DType::f32);
  Tensor second = rank_tensor(world.rank(), 3, DType::i64);
  Tensor gathered = zeros({17 * world.size()}, {.dtype = DType::f16});
  std::unique_ptr<Work> first_work = world.all_reduce_async(first);
  std::unique_ptr<Work> second_work = world.all_reduce_async(second, ReduceOperation::max);
  std::unique_ptr<Work> gather_work =
      world.all_gather_async(gather_input(world.rank(), 17, DType::f16), gathered);
  gather_work->wait();
  second_work->wait();
  first_work->wait();
  std::vector<double> expected_first(129);
  for (int64_t i = 0; i < 129; ++i)
    expected_first[size_t(i)] = reduced_value(ReduceOperation::sum, world.size(), i);
  CHECK(holds_values(first, expected_first));
  CHECK(holds_values(second, {double(world.size()), 2.0 * world.size(), 3.0 * world.size()}));
  CHECK(holds_values(gathered, gathered_values(world.size(), 17)));
}

TEST_CASE("destroying_an_unfinished_work_waits_for_its_result") {
  Communicator& world = test_world();
  Tensor tensor = rank_tensor(world.rank(), 17, DType::f64);
  { std::unique_ptr<Work> dropped = world.all_reduce_async(tensor); }
  std::vector<double> expected(17);
  for (int64_t i = 0; i < 17; ++i)
    expected[size_t(i)] = reduced_value(ReduceOperation::sum, world.size(), i);
  CHECK(holds_values(tensor, expected));
}

TEST_CASE("wait_for_gives_up_while_a_rank_has_not_joined_and_succeeds_once_it_has") {
  // The other ranks join only after rank 0's bounded wait, told to by a message, so the wait
  // cannot have seen them whatever the scheduling.
  Communicator& world = test_world();
  Tensor output = zeros({world.size()});
  Tensor go = zeros({1});
  if (world.rank() == 0) {
    std::unique_ptr<Work> work = world.all_gather_async(full({1}, 0.0), output);
    bool finished_alone = work->wait_for(0.05);
    for (int peer = 1; peer < world.size(); ++peer) world.send(go, peer);
    if (world.size() > 1) CHECK_FALSE(finished_alone);  // alone, it may finish at once
    CHECK(work->wait_for(60.0));
  } else {
    world.recv(go, 0);
    world.all_gather_async(full({1}, double(world.rank())), output)->wait();
  }
  for (int rank = 0; rank < world.size(); ++rank) CHECK(output.to_vector()[size_t(rank)] == rank);
}

TEST_CASE("send_recv_ring_passes_each_rank_tensor_to_the_next") {
  Communicator& world = test_world();
  if (world.size() == 1) return;  // a ring of one would send to itself
  int next = (world.rank() + 1) % world.size();
  int previous = (world.rank() + world.size() - 1) % world.size();
  for (DType dtype : kAllDTypes) {
    CAPTURE(dtype_name(dtype));
    Tensor outgoing = rank_tensor(world.rank(), 129, dtype);
    Tensor incoming = zeros({129}, {.dtype = dtype});
    // Even ranks send first, odd ranks receive first: blocking sends cannot all wait at once.
    if (world.rank() % 2 == 0) {
      world.send(outgoing, next, 7);
      world.recv(incoming, previous, 7);
    } else {
      world.recv(incoming, previous, 7);
      world.send(outgoing, next, 7);
    }
    CHECK(holds_values(incoming, rank_tensor(previous, 129, dtype).to_vector()));
  }
}

TEST_CASE("recv_of_a_message_of_another_length_names_both_lengths") {
  Communicator& world = test_world();
  if (world.size() == 1) return;
  std::string longer_error;
  std::string shorter_error;
  if (world.rank() == 0) {
    world.send(ones({5}), 1, 3);
    world.send(ones({5}), 1, 4);
  } else if (world.rank() == 1) {
    longer_error = error_of([&] { world.recv(zeros({4}), 0, 3); });
    shorter_error = error_of([&] { world.recv(zeros({6}), 0, 4); });
  }
  world.barrier();
  if (world.rank() == 1) {
    CHECK(longer_error.find("recv: the message from rank 0 (tag 3) is longer") == 0);
    CHECK(shorter_error.find("holds 5 elements") != std::string::npos);
    CHECK(shorter_error.find("f32 [6]") != std::string::npos);
  }
}

TEST_CASE("recv_async_is_posted_before_its_message_is_sent_and_completes_on_wait") {
  // Rank 0 sends only after a collective that rank 1 joins after posting its receive: a
  // receive that blocked would keep rank 1 out, so rank 0's bounded wait would give up.
  Communicator& world = test_world();
  if (world.size() == 1) return;
  Tensor gathered = zeros({world.size()});
  Tensor incoming = zeros({33}, {.dtype = DType::bf16});
  bool pending_before_send = false, joined_in_time = false;
  if (world.rank() == 0) {
    std::unique_ptr<Work> meeting = world.all_gather_async(full({1}, 0.0), gathered);
    joined_in_time = meeting->wait_for(20.0);
    world.send(rank_tensor(0, 33, DType::bf16), 1, 5);
    meeting->wait();
  } else if (world.rank() == 1) {
    std::unique_ptr<Work> posted = world.recv_async(incoming, 0, 5);
    pending_before_send = !posted->test();
    world.all_gather_async(full({1}, 1.0), gathered)->wait();
    posted->wait();
  } else {
    world.all_gather(full({1}, double(world.rank())), gathered);
  }
  if (world.rank() == 0) CHECK(joined_in_time);
  if (world.rank() == 1) {
    CHECK(pending_before_send);
    CHECK(holds_values(incoming, rank_tensor(0, 33, DType::bf16).to_vector()));
  }
}

TEST_CASE("recv_async_of_a_shorter_message_fails_its_wait_and_an_abandoned_one_is_cancelled") {
  Communicator& world = test_world();
  if (world.size() == 1) return;
  std::string shorter_error;
  if (world.rank() == 0) world.send(ones({5}), 1, 8);
  if (world.rank() == 1) {
    shorter_error = error_of([&] { world.recv_async(zeros({6}), 0, 8)->wait(); });
    // No message with tag 9 ever comes: destroying the receive must not wait for one.
    std::unique_ptr<Work> abandoned = world.recv_async(zeros({2}), 0, 9);
  }
  world.barrier();
  if (world.rank() == 1) {
    CHECK(shorter_error.find("recv: the message from rank 0 (tag 8) holds 5 elements") == 0);
    CHECK(shorter_error.find("f32 [6]") != std::string::npos);
  }
}

TEST_CASE("split_into_even_and_odd_groups_reduces_within_each_group") {
  Communicator& world = test_world();
  int parity = world.rank() % 2;
  std::unique_ptr<Communicator> group = world.split(parity, world.rank());
  int expected_size = (world.size() + 1 - parity) / 2;
  CHECK(group->size() == expected_size);
  CHECK(group->rank() == world.rank() / 2);
  CHECK(group->name() == "mpi");
  Tensor world_rank = from_values({double(world.rank())}, {1}, {.dtype = DType::i64});
  group->all_reduce(world_rank);
  double expected_sum = 0;
  for (int rank = parity; rank < world.size(); rank += 2) expected_sum += rank;
  CHECK(world_rank.item() == expected_sum);
  // A descending key reverses the order inside the group.
  std::unique_ptr<Communicator> reversed = world.split(parity, -world.rank());
  CHECK(reversed->rank() == expected_size - 1 - world.rank() / 2);
  // Groups keep their own stats.
  CHECK(group->stats()[CollectiveKind::all_reduce].calls == 1);
  CHECK(reversed->stats()[CollectiveKind::all_reduce].calls == 0);
}

}  // namespace
}  // namespace zt::comm
