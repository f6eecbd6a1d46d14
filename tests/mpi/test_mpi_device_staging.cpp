// Multi-rank tests of MpiCommunicator behind the StagingCommunicator decorator on CUDA tensors,
// which it stages through pinned host copies: every collective, send/recv and the async forms
// on device tensors of f32, f16 and bf16 must give the same bits and the same stats (calls,
// buffer and payload bytes) as the same call on host tensors. Those cases need a CUDA device
// (ranks may share one) and are skipped without one. The staging machinery on host tensors,
// host_communicator() and the decorator's pass-through of host calls run on every machine.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "comm/host_staging.h"
#include "comm/staging_communicator.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/requirements.h"

namespace zt::comm {
namespace {

using testing::test_world;

// The test world behind the staging decorator, as zt::initialize gives it to an engine whose
// model is on a GPU and whose ZeRO traffic goes through MPI.
Communicator& staged_world() {
  static StagingCommunicator staged(test_world());
  return staged;
}

constexpr DType kStagedDTypes[] = {DType::f32, DType::f16, DType::bf16};

// This rank's device: ranks share the node's devices in turn.
Device gpu() {
  return Device::cuda(testing::test_runtime().local_rank() % cuda_device_count());
}

// Values that round differently in every dtype and differ from rank to rank, so that a sum
// in another order or precision would show in the bits.
Tensor rank_values(int64_t elems, DType dtype, int salt = 0) {
  std::vector<double> values(static_cast<size_t>(elems));
  int rank = test_world().rank();
  for (int64_t i = 0; i < elems; ++i)
    values[size_t(i)] = std::sin(double(rank * 131 + salt * 17 + i)) * 3.7;
  return from_values(values, {elems}, {.dtype = dtype});
}

std::vector<uint8_t> bytes_of(const Tensor& tensor) {
  Tensor host = tensor.to(Device::cpu());
  std::vector<uint8_t> bytes(host.nbytes());
  if (!bytes.empty()) std::memcpy(bytes.data(), host.raw_data(), bytes.size());
  return bytes;
}

bool same_counts(const CommStats& a, const CommStats& b) {
  for (size_t kind = 0; kind < kCollectiveKindCount; ++kind) {
    const CollectiveCounter &x = a.by_kind[kind], &y = b.by_kind[kind];
    if (x.calls != y.calls || x.payload_bytes != y.payload_bytes ||
        x.buffer_bytes != y.buffer_bytes)
      return false;
  }
  return true;
}

// Runs `call` on `host_tensors`, then on device copies of them made before the first run, and
// checks that every tensor ends with the same bits and that the stats counted the same.
void check_device_call_equals_host_call(
    std::vector<Tensor> host_tensors, const std::function<void(const std::vector<Tensor>&)>& call) {
  std::vector<Tensor> device_tensors;
  for (const Tensor& tensor : host_tensors) device_tensors.push_back(tensor.to(gpu()));
  Communicator& world = staged_world();
  world.reset_stats();
  call(host_tensors);
  CommStats host_stats = world.stats();
  world.reset_stats();
  call(device_tensors);
  CommStats device_stats = world.stats();
  world.reset_stats();
  for (size_t i = 0; i < host_tensors.size(); ++i) {
    CHECK(device_tensors[i].device() == gpu());
    CHECK(bytes_of(device_tensors[i]) == bytes_of(host_tensors[i]));
  }
  CHECK(same_counts(device_stats, host_stats));
  CHECK(device_stats.total_payload_bytes() == host_stats.total_payload_bytes());
}

std::vector<int64_t> staged_sizes() {
  int64_t ranks = test_world().size();
  return {1, 17, 64 * ranks};  // padded, padded unless one rank, whole slices
}

TEST_SUITE("mpi_device_staging") {
  TEST_CASE("host_communicator_of_an_mpi_communicator_is_itself") {
    Communicator& world = test_world();
    CHECK(&world.host_communicator() == &world);
    std::unique_ptr<Communicator> half = world.split(world.rank() % 2, world.rank());
    CHECK(&half->host_communicator() == half.get());
  }

  TEST_CASE("a_staging_communicator_passes_host_calls_to_the_wrapped_one_with_its_stats") {
    Communicator& world = test_world();
    StagingCommunicator staged(world);
    CHECK(staged.rank() == world.rank());
    CHECK(staged.size() == world.size());
    CHECK(staged.name() == "mpi");
    CHECK(&staged.host_communicator() == &world);
    Tensor through_staged = rank_values(37, DType::f32);
    Tensor through_world = ops::clone(through_staged);
    world.reset_stats();
    staged.all_reduce(through_staged);
    CommStats staged_stats = staged.stats();
    CHECK(&staged.stats() == &world.stats());
    world.reset_stats();
    world.all_reduce(through_world);
    CHECK(bytes_of(through_staged) == bytes_of(through_world));
    CHECK(same_counts(staged_stats, world.stats()));
    std::unique_ptr<Communicator> half = staged.split(world.rank() % 2, world.rank());
    CHECK(dynamic_cast<StagingCommunicator*>(half.get()) != nullptr);
    CHECK(half->size() == (world.size() + 1 - world.rank() % 2) / 2);
    world.reset_stats();
  }

  // The staging machinery itself, on host tensors, so that it runs without a GPU too.
  TEST_CASE("host_staging_keeps_in_place_forms_and_copies_back_only_on_completion") {
    Communicator& world = test_world();
    int64_t ranks = world.size(), slice = 13, full = slice * ranks;
    for (DType dtype : kStagedDTypes) {
      CAPTURE(dtype_name(dtype));
      Tensor output = zeros({full}, {.dtype = dtype});
      Tensor own_slice = ops::narrow(output, 0, world.rank() * slice, slice);
      ops::copy_(own_slice, rank_values(slice, dtype));
      Tensor expected = ops::clone(output);
      world.all_gather(ops::narrow(expected, 0, world.rank() * slice, slice), expected);
      world.reset_stats();
      std::unique_ptr<Work> gathered = run_async_on_host(
          {{own_slice, StagedAccess::reads}, {output, StagedAccess::writes}},
          [&](const HostStaging& host) {
            // Still the output's own slice on the host: gathered in place.
            CHECK(host.host_tensor(0).storage() == host.host_tensor(1).storage());
            CHECK(host.host_tensor(0).storage() != output.storage());
            CHECK(host.host_tensor(0).storage_offset() ==
                  host.host_tensor(1).storage_offset() + world.rank() * slice);
            return world.all_gather_async(host.host_tensor(0), host.host_tensor(1));
          });
      if (ranks > 1) CHECK(bytes_of(output) != bytes_of(expected));  // not copied back yet
      gathered->wait();
      CHECK(bytes_of(output) == bytes_of(expected));
      CHECK(world.stats()[CollectiveKind::all_gather].payload_bytes ==
            int64_t(expected.nbytes()) * (ranks - 1) / ranks);
      // A reduce_scatter into the input's own slice, blocking: the slice gets the sum.
      Tensor summed = rank_values(full, dtype);
      Tensor summed_expected = ops::clone(summed);
      world.reduce_scatter(summed_expected,
                           ops::narrow(summed_expected, 0, world.rank() * slice, slice));
      Tensor summed_slice = ops::narrow(summed, 0, world.rank() * slice, slice);
      run_on_host({{summed, StagedAccess::reads}, {summed_slice, StagedAccess::writes}},
                  [&](const HostStaging& host) {
                    world.reduce_scatter(host.host_tensor(0), host.host_tensor(1));
                  });
      CHECK(bytes_of(summed) == bytes_of(summed_expected));
      world.reset_stats();
    }
  }

  TEST_CASE("staged_all_reduce_sum_and_max_equal_the_host_bits_and_stats" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kStagedDTypes) {
      for (int64_t elems : staged_sizes()) {
        for (ReduceOperation op : {ReduceOperation::sum, ReduceOperation::max}) {
          CAPTURE(dtype_name(dtype));
          CAPTURE(elems);
          check_device_call_equals_host_call(
              {rank_values(elems, dtype)},
              [&](const std::vector<Tensor>& t) { staged_world().all_reduce(t[0], op); });
        }
      }
    }
  }

  TEST_CASE("staged_reduce_scatter_equals_the_host_bits_and_stats_also_in_place" *
            ZT_NEEDS_CUDA_DEVICE) {
    Communicator& world = staged_world();
    for (DType dtype : kStagedDTypes) {
      for (int64_t slice : {int64_t(1), int64_t(17)}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(slice);
        int64_t full = slice * world.size();
        check_device_call_equals_host_call(
            {rank_values(full, dtype), zeros({slice}, {.dtype = dtype})},
            [&](const std::vector<Tensor>& t) { world.reduce_scatter(t[0], t[1]); });
        // The output is this rank's slice of the input (ZeRO's gradient buffer).
        check_device_call_equals_host_call(
            {rank_values(full, dtype)}, [&](const std::vector<Tensor>& t) {
              world.reduce_scatter(t[0], ops::narrow(t[0], 0, world.rank() * slice, slice));
            });
      }
    }
  }

  TEST_CASE("staged_all_gather_equals_the_host_bits_and_stats_also_in_place" *
            ZT_NEEDS_CUDA_DEVICE) {
    Communicator& world = staged_world();
    for (DType dtype : kStagedDTypes) {
      CAPTURE(dtype_name(dtype));
      int64_t slice = 13, full = slice * world.size();
      check_device_call_equals_host_call(
          {rank_values(slice, dtype), zeros({full}, {.dtype = dtype})},
          [&](const std::vector<Tensor>& t) { world.all_gather(t[0], t[1]); });
      // The input is this rank's slice of the output (ZeRO's parameter buffer).
      Tensor output = zeros({full}, {.dtype = dtype});
      ops::copy_(ops::narrow(output, 0, world.rank() * slice, slice), rank_values(slice, dtype));
      check_device_call_equals_host_call({output}, [&](const std::vector<Tensor>& t) {
        world.all_gather(ops::narrow(t[0], 0, world.rank() * slice, slice), t[0]);
      });
    }
  }

  TEST_CASE("a_staging_communicator_passes_all_to_all_on_host_tensors_by_the_slice_rule") {
    // Slice s of rank r's input holds 1000 r + 10 s + i; it must land in slice r of rank s's
    // output, counted as the wrapped communicator counts it.
    Communicator& world = test_world();
    StagingCommunicator staged(world);
    const int ranks = world.size(), rank = world.rank();
    const int64_t slice = 3;
    std::vector<double> sent(static_cast<size_t>(slice * ranks)), expected(sent.size());
    for (int s = 0; s < ranks; ++s) {
      for (int64_t i = 0; i < slice; ++i) {
        sent[size_t(s * slice + i)] = 1000.0 * rank + 10.0 * s + double(i);
        expected[size_t(s * slice + i)] = 1000.0 * s + 10.0 * rank + double(i);
      }
    }
    Tensor input = from_values(sent, {slice * ranks});
    Tensor output = zeros({slice * ranks});
    world.reset_stats();
    staged.all_to_all(input, output);
    CHECK(output.to_vector() == expected);
    const CollectiveCounter& counted = staged.stats()[CollectiveKind::all_to_all];
    CHECK(counted.calls == 1);
    CHECK(counted.payload_bytes == input.nbytes() * (ranks - 1) / ranks);
    world.reset_stats();
  }

  TEST_CASE("staged_all_to_all_equals_the_host_bits_and_stats" * ZT_NEEDS_CUDA_DEVICE) {
    Communicator& world = staged_world();
    for (DType dtype : kStagedDTypes) {
      CAPTURE(dtype_name(dtype));
      const int64_t full = 5 * world.size();
      check_device_call_equals_host_call(
          {rank_values(full, dtype), zeros({full}, {.dtype = dtype})},
          [&](const std::vector<Tensor>& t) { world.all_to_all(t[0], t[1]); });
    }
  }

  TEST_CASE("staged_broadcast_and_reduce_equal_the_host_bits_and_stats" * ZT_NEEDS_CUDA_DEVICE) {
    Communicator& world = staged_world();
    for (DType dtype : kStagedDTypes) {
      for (int root : {0, world.size() - 1}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(root);
        check_device_call_equals_host_call(
            {rank_values(33, dtype)},
            [&](const std::vector<Tensor>& t) { world.broadcast(t[0], root); });
        check_device_call_equals_host_call(
            {rank_values(33, dtype)},
            [&](const std::vector<Tensor>& t) { world.reduce(t[0], root); });
      }
    }
  }

  TEST_CASE("staged_send_recv_ring_equals_the_host_bits_and_stats" * ZT_NEEDS_CUDA_DEVICE) {
    Communicator& world = staged_world();
    if (world.size() == 1) return;
    int next = (world.rank() + 1) % world.size();
    int previous = (world.rank() + world.size() - 1) % world.size();
    for (DType dtype : kStagedDTypes) {
      CAPTURE(dtype_name(dtype));
      // Even ranks send first, odd ranks receive first, so the blocking ring cannot deadlock.
      check_device_call_equals_host_call({rank_values(21, dtype), zeros({21}, {.dtype = dtype})},
                                         [&](const std::vector<Tensor>& t) {
                                           if (world.rank() % 2 == 0) {
                                             world.send(t[0], next, 5);
                                             world.recv(t[1], previous, 5);
                                           } else {
                                             world.recv(t[1], previous, 5);
                                             world.send(t[0], next, 5);
                                           }
                                         });
    }
  }

  TEST_CASE("staged_async_collectives_copy_back_in_wait_and_in_test" * ZT_NEEDS_CUDA_DEVICE) {
    Communicator& world = staged_world();
    int64_t ranks = world.size();
    for (DType dtype : kStagedDTypes) {
      CAPTURE(dtype_name(dtype));
      check_device_call_equals_host_call(
          {rank_values(40 * ranks, dtype), rank_values(17, dtype, 1), zeros({5}, {.dtype = dtype}),
           rank_values(5 * ranks, dtype, 2), rank_values(9, dtype, 3)},
          [&](const std::vector<Tensor>& t) {
            std::unique_ptr<Work> summed = world.all_reduce_async(t[0]);
            std::unique_ptr<Work> maximum = world.all_reduce_async(t[1], ReduceOperation::max);
            std::unique_ptr<Work> scattered = world.reduce_scatter_async(t[3], t[2]);
            std::unique_ptr<Work> broadcast = world.broadcast_async(t[4], 0);
            // Waited in another order than issued; the broadcast completes through test().
            while (!broadcast->test()) {
            }
            CHECK(broadcast->test());
            scattered->wait();
            maximum->wait();
            summed->wait();
          });
      // A gather whose Work is destroyed unwaited: the destructor waits and copies back.
      check_device_call_equals_host_call(
          {rank_values(6, dtype), zeros({6 * ranks}, {.dtype = dtype})},
          [&](const std::vector<Tensor>& t) { (void)world.all_gather_async(t[0], t[1]); });
    }
  }

  TEST_CASE("staged_buffers_are_comm_memory_and_are_released" * ZT_NEEDS_CUDA_DEVICE) {
    Communicator& world = staged_world();
    Tensor tensor = rank_values(1000, DType::f32).to(gpu());
    int64_t comm_before = cpu_allocator().accounting().stats().live(MemoryTag::comm);
    cpu_allocator().accounting().reset_peak();
    world.all_reduce(tensor);
    MemoryStats after = cpu_allocator().accounting().stats();
    CHECK(after.peak(MemoryTag::comm) >= comm_before + 4000);  // the staged copy, at least
    CHECK(after.live(MemoryTag::comm) == comm_before);
  }

  TEST_CASE("a_call_mixing_host_and_device_tensors_is_rejected_naming_both" *
            ZT_NEEDS_CUDA_DEVICE) {
    Communicator& world = staged_world();
    int64_t ranks = world.size();
    Tensor host_input = zeros({4});
    Tensor device_output = zeros({4 * ranks}, {.device = gpu()});
    CHECK_THROWS_WITH_AS(world.all_gather(host_input, device_output),
                         fmt::format("all_gather: output (f32 [{}]) is on {} but input is on cpu; "
                                     "the tensors of one call must be on one device",
                                     4 * ranks, gpu().str())
                             .c_str(),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(world.reduce_scatter(device_output, host_input),
                         doctest::Contains("reduce_scatter: output (f32 [4]) is on cpu but input "
                                           "is on cuda:"),
                         std::invalid_argument);
    world.barrier();  // nothing was sent: the group is still in step
  }
}

}  // namespace
}  // namespace zt::comm
