// Multi-rank tests of MpiCommunicator's accounting and rules: the ring-model stats of every
// call, 16-bit reductions summed in f32, argument errors, and the rank-order reduction in
// chunked rounds, blocking and in flight. Every rank runs every collective; checks come after
// it, so a failing check never leaves a rank behind.
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
