// Multi-rank tests of MpiCommunicator: every collective, blocking and async, against values
// computed locally from the rank numbers, for every dtype that applies and odd sizes; split
// groups, a send/recv ring, the ring-model stats, and argument errors. Every rank runs every
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
#include "tests/mpi/mpi_test_world.h"

namespace zt::comm {
namespace {

using testing::test_world;

constexpr int64_t kOddSizes[] = {1, 3, 17, 129};
constexpr DType kReducibleDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16,
                                      DType::i32, DType::i64, DType::u8};
constexpr ReduceOperation kOperations[] = {ReduceOperation::sum, ReduceOperation::max,
                                           ReduceOperation::min};

// Rank r's element i: (r + 1) * (i % 7 + 1). Small integers, so every dtype holds them and
// their sums over 8 ranks exactly (at most 7 * 36 = 252, inside u8 and bf16's exact range).
double rank_value(int rank, int64_t index) {
  return double(rank + 1) * double(index % 7 + 1);
}

Tensor rank_tensor(int rank, int64_t elems, DType dtype, int64_t first_index = 0) {
  std::vector<double> values(static_cast<size_t>(elems));
  for (int64_t i = 0; i < elems; ++i) values[size_t(i)] = rank_value(rank, first_index + i);
  return from_values(values, {elems}, {.dtype = dtype});
}

// The closed form of reducing rank_value(r, index) over ranks 0..ranks-1.
double reduced_value(ReduceOperation op, int ranks, int64_t index) {
  double factor = double(index % 7 + 1);
  switch (op) {
    case ReduceOperation::sum:
      return factor * ranks * (ranks + 1) / 2;
    case ReduceOperation::max:
      return factor * ranks;
    case ReduceOperation::min:
      return factor;
  }
  return 0;
}

const char* op_name(ReduceOperation op) {
  return op == ReduceOperation::sum ? "sum" : op == ReduceOperation::max ? "max" : "min";
}

// Compares every element (the values are small integers, exact in every dtype).
bool holds_values(const Tensor& tensor, const std::vector<double>& expected) {
  return tensor.to_vector() == expected;
}

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const std::exception& error) {
    return error.what();
  }
  return "(no error)";
}

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

TEST_CASE("stats_count_calls_buffer_bytes_and_ring_payload_bytes_exactly") {
  Communicator& world = test_world();
  int64_t ranks = world.size();
  world.reset_stats();
  world.all_reduce(ones({129}));                                      // f32: 516 bytes
  world.all_reduce_async(ones({17}, {.dtype = DType::f16}))->wait();  // 34 bytes, counted in f16
  world.reduce_scatter(ones({17 * ranks}), zeros({17}));              // full buffer 68N bytes
  world.all_gather(ones({3}, {.dtype = DType::f64}), zeros({3 * ranks}, {.dtype = DType::f64}));
  world.broadcast(ones({5}, {.dtype = DType::i64}), 0);  // 40 bytes
  world.reduce(ones({3}, {.dtype = DType::u8}), 0);      // 3 bytes
  world.barrier();
  const CommStats& stats = world.stats();
  const CollectiveCounter& all_reduce = stats[CollectiveKind::all_reduce];
  CHECK(all_reduce.calls == 2);
  CHECK(all_reduce.buffer_bytes == 516 + 34);
  CHECK(all_reduce.payload_bytes == 2 * 516 * (ranks - 1) / ranks + 2 * 34 * (ranks - 1) / ranks);
  CHECK(all_reduce.seconds > 0.0);
  const CollectiveCounter& reduce_scatter = stats[CollectiveKind::reduce_scatter];
  CHECK(reduce_scatter.calls == 1);
  CHECK(reduce_scatter.buffer_bytes == 68 * ranks);
  CHECK(reduce_scatter.payload_bytes == 68 * (ranks - 1));
  const CollectiveCounter& all_gather = stats[CollectiveKind::all_gather];
  CHECK(all_gather.buffer_bytes == 24);
  CHECK(all_gather.payload_bytes == 24 * (ranks - 1));
  int64_t pipeline_bytes_if_shared = ranks > 1 ? 1 : 0;
  CHECK(stats[CollectiveKind::broadcast].payload_bytes == 40 * pipeline_bytes_if_shared);
  CHECK(stats[CollectiveKind::reduce].payload_bytes == 3 * pipeline_bytes_if_shared);
  CHECK(stats[CollectiveKind::barrier].calls == 1);
  CHECK(stats[CollectiveKind::barrier].payload_bytes == 0);
  CHECK(stats.total_payload_bytes() == all_reduce.payload_bytes + reduce_scatter.payload_bytes +
                                           all_gather.payload_bytes +
                                           (40 + 3) * pipeline_bytes_if_shared);
  CHECK(stats.summary().find("reduce_scatter") != std::string::npos);
  CHECK(stats.summary().find("send") == std::string::npos);  // unused kinds are left out
  world.reset_stats();
  CHECK(world.stats().total_payload_bytes() == 0);
}

TEST_CASE("send_and_recv_stats_count_the_sender_payload_only") {
  Communicator& world = test_world();
  if (world.size() == 1) return;
  world.reset_stats();
  if (world.rank() == 0) world.send(ones({10}), 1);
  if (world.rank() == 1) world.recv(zeros({10}), 0);
  const CommStats& stats = world.stats();
  CHECK(stats[CollectiveKind::send].payload_bytes == (world.rank() == 0 ? 40 : 0));
  CHECK(stats[CollectiveKind::recv].buffer_bytes == (world.rank() == 1 ? 40 : 0));
  CHECK(stats[CollectiveKind::recv].payload_bytes == 0);
  world.reset_stats();
}

TEST_CASE("half_precision_reductions_travel_16_bit_and_sum_in_f32_rounding_once") {
  Communicator& world = test_world();
  MemoryAccounting& accounting = cpu_allocator().accounting();
  // Rank 0 holds 2048, every other rank 1. f16 steps by 2 at 2048, so adding the ones one at
  // a time in f16 would stay at 2048 (each 2049 rounds to even); summed in f32 and rounded
  // once, the result is 2048 + (N - 1) rounded to f16.
  float exact = 2048.0f + float(world.size() - 1);
  float expected = f16_bits_to_float(float_to_f16_bits(exact));
  for (bool reduce_scatter : {false, true}) {
    CAPTURE(reduce_scatter);
    int64_t elems = 8 * world.size();
    Tensor values = full({elems}, world.rank() == 0 ? 2048.0 : 1.0, {.dtype = DType::f16});
    int64_t comm_before = accounting.stats().live(MemoryTag::comm);
    world.reset_stats();
    std::vector<double> result;
    if (reduce_scatter) {
      Tensor slice = zeros({8}, {.dtype = DType::f16});
      world.reduce_scatter(values, slice);
      result = slice.to_vector();
    } else {
      world.all_reduce(values);
      result = values.to_vector();
    }
    for (double value : result) CHECK(value == double(expected));
    CollectiveKind kind =
        reduce_scatter ? CollectiveKind::reduce_scatter : CollectiveKind::all_reduce;
    // Two bytes an element travel: the payload counted is the 16-bit buffer's.
    CHECK(world.stats()[kind].buffer_bytes == elems * 2);
    CHECK(accounting.stats().live(MemoryTag::comm) == comm_before);  // staging is gone
  }
  world.reset_stats();
}

TEST_CASE("argument_errors_name_the_op_and_the_shapes") {
  Communicator& world = test_world();
  int ranks = world.size();
  Tensor matrix = zeros({3, 4});
  CHECK(error_of([&] { world.all_reduce(matrix.t()); }) ==
        "all_reduce: tensor (f32 [4, 3], strides [1, 4]) must be contiguous");
  CHECK(error_of([&] { world.all_reduce(Tensor()); }) == "all_reduce: tensor is undefined");
  std::string uneven =
      error_of([&] { world.reduce_scatter(zeros({10 * ranks + 1}), zeros({10})); });
  CHECK(uneven.find("reduce_scatter: input (f32 [") == 0);
  CHECK(uneven.find(fmt::format("must hold {} slices of output (f32 [10])", ranks)) !=
        std::string::npos);
  std::string gather_size = error_of([&] { world.all_gather(zeros({4}), zeros({4 * ranks + 2})); });
  CHECK(gather_size.find("all_gather: output (f32 [") == 0);
  CHECK(gather_size.find(fmt::format("expected {} elements, got {}", 4 * ranks, 4 * ranks + 2)) !=
        std::string::npos);
  CHECK(error_of([&] {
          world.all_gather(zeros({4}), zeros({4 * ranks}, {.dtype = DType::f64}));
        }).find("all_gather: input (f32 [4]) and output (f64 [") == 0);
  CHECK(error_of([&] { world.broadcast(zeros({2}), ranks); }) ==
        fmt::format("broadcast: root {} is outside the group of {} ranks", ranks, ranks));
  CHECK(error_of([&] { world.reduce(zeros({2}), -1); }) ==
        fmt::format("reduce: root -1 is outside the group of {} ranks", ranks));
  CHECK(error_of([&] { world.send(zeros({2}), world.rank()); }) ==
        fmt::format("send: rank {} sending to itself would block", world.rank()));
  CHECK(error_of([&] { (void)world.split(-1, 0); }) == "split: color -1 must be >= 0");
  // An input that overlaps the output without being its slice rank() can't be gathered.
  Tensor base = zeros({4 * ranks + 1});
  Tensor output = ops::narrow(base, 0, 0, 4 * ranks);
  Tensor shifted_input = ops::narrow(base, 0, world.rank() * 4 + 1, 4);
  CHECK(
      error_of([&] { world.all_gather(shifted_input, output); }) ==
      fmt::format("all_gather: input (f32 [4]) overlaps output (f32 [{}]) but is not its slice {} "
                  "(the only overlap gathered in place)",
                  4 * ranks, world.rank()));
  // Nothing was sent: the group is still in step.
  world.barrier();
}

}  // namespace
TEST_CASE("reductions exchanged in small rounds give the same bits as in one round") {
  MpiCommunicator& world = test_world();
  std::unique_ptr<Communicator> group = world.split(0, world.rank());
  auto& chunked = dynamic_cast<MpiCommunicator&>(*group);
  chunked.set_reduce_staging_numel(7);  // rounds of one element per rank at N = 8
  for (int64_t per_rank : {1, 3, 17, 129}) {
    CAPTURE(per_rank);
    int64_t total = per_rank * world.size();
    // Values whose float sums depend on the order they are added in.
    std::vector<double> values(static_cast<size_t>(total));
    for (int64_t i = 0; i < total; ++i) values[size_t(i)] = 1.0 / double(3 + i + 7 * world.rank());
    Tensor whole_once = from_values(values, {total}), whole_chunked = from_values(values, {total});
    world.all_reduce(whole_once);
    chunked.all_reduce(whole_chunked);
    CHECK(whole_chunked.to_vector() == whole_once.to_vector());
    Tensor slice_once = zeros({per_rank}), slice_chunked = zeros({per_rank});
    world.reduce_scatter(from_values(values, {total}), slice_once);
    chunked.reduce_scatter(from_values(values, {total}), slice_chunked);
    CHECK(slice_chunked.to_vector() == slice_once.to_vector());
    // Both are the f32 sum taken in rank order 0, 1, ..., N-1, computed here.
    std::vector<double> expected(static_cast<size_t>(per_rank));
    for (int64_t k = 0; k < per_rank; ++k) {
      int64_t i = world.rank() * per_rank + k;
      float sum = float(1.0 / double(3 + i));
      for (int source = 1; source < world.size(); ++source)
        sum += float(1.0 / double(3 + i + 7 * source));
      expected[size_t(k)] = sum;
    }
    CHECK(slice_once.to_vector() == expected);
  }
}

TEST_CASE(
    "several chunked reductions in flight, polled unevenly across ranks, match blocking ones") {
  // A poll must never start a round: ranks poll at different moments, and collectives started
  // in different orders on one communicator get mismatched (MPI_ERR_TRUNCATE or wrong data).
  MpiCommunicator& world = test_world();
  std::unique_ptr<Communicator> group = world.split(0, world.rank());
  auto& chunked = dynamic_cast<MpiCommunicator&>(*group);
  chunked.set_reduce_staging_numel(5);
  const int64_t per_rank = 13;
  const int64_t total = per_rank * world.size();
  auto values_for = [&](int which) {
    std::vector<double> values(static_cast<size_t>(total));
    for (int64_t i = 0; i < total; ++i)
      values[size_t(i)] = double(which + 1) * rank_value(world.rank(), i);
    return from_values(values, {total});
  };
  std::vector<Tensor> reduced, expected;
  std::vector<Tensor> scattered, expected_scattered;
  std::vector<std::unique_ptr<Work>> works;
  for (int which = 0; which < 3; ++which) {
    reduced.push_back(values_for(which));
    expected.push_back(values_for(which));
    works.push_back(chunked.all_reduce_async(reduced.back()));
    scattered.push_back(zeros({per_rank}));
    expected_scattered.push_back(zeros({per_rank}));
    works.push_back(chunked.reduce_scatter_async(values_for(10 + which), scattered.back()));
    for (int poll = 0; poll < 3 * world.rank(); ++poll) {
      for (auto& work : works) work->test();
    }
  }
  for (auto& work : works) work->wait();
  for (int which = 0; which < 3; ++which) {
    world.all_reduce(expected[size_t(which)]);
    world.reduce_scatter(values_for(10 + which), expected_scattered[size_t(which)]);
  }
  for (int which = 0; which < 3; ++which) {
    CHECK(reduced[size_t(which)].to_vector() == expected[size_t(which)].to_vector());
    CHECK(scattered[size_t(which)].to_vector() == expected_scattered[size_t(which)].to_vector());
  }
}

}  // namespace zt::comm
