// Checkpoints with offloaded optimizer state (and at stage 3 with "nvme", parameters on disk
// too): saved from swap files (or host memory) and loaded
// into an engine without offload, and the reverse, each continuing bitwise as the straight run;
// and an nvme_path too small for the swap files (a full disk) refused on every rank with a
// one-line error while the last checkpoint still loads.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/mount.h>

#include <filesystem>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/offload_test_helpers.h"

namespace zt::dist {
namespace {

using namespace testing;

// Global steps [from, to) of the MLP on each rank's share of the global batch.
void train_steps(Engine& engine, int from, int to) {
  int world = engine.world_size();
  int64_t micro = kGlobalBatch / world;
  for (int step = from; step < to; ++step) {
    GlobalBatch batch = global_batch(step);
    int64_t first = engine.rank() * micro;
    Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro)).to(DType::f32);
    engine.backward(cross_entropy(logits, ops::narrow(batch.targets, 0, first, micro)));
    engine.step();
  }
}

std::vector<double> straight_run(const OffloadCase& c) {
  Engine engine(offload_config(c, test_world().size()), make_mlp(), test_world());
  train_steps(engine, 0, kOffloadSteps);
  return concatenated(engine.consolidated_state_dict());
}

// Saves after half the steps under `saving`, loads into a fresh engine under `loading`, and
// returns the weights after the rest.
std::vector<double> resumed_run(const OffloadCase& saving, const OffloadCase& loading,
                                const std::string& checkpoints) {
  {
    Engine first(offload_config(saving, test_world().size()), make_mlp(), test_world());
    train_steps(first, 0, kOffloadSteps / 2);
    first.save_checkpoint(checkpoints, "half");
  }
  Engine second(offload_config(loading, test_world().size()), make_mlp(), test_world());
  second.load_checkpoint(checkpoints, "half");
  train_steps(second, kOffloadSteps / 2, kOffloadSteps);
  return concatenated(second.consolidated_state_dict());
}

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("offloaded optimizer state: saved with offload, loaded without (and back), bitwise") {
  SharedTempDir swap("offload-ckpt-swap");
  SharedTempDir checkpoints("offload-ckpt");
  int cases = 0;
  for (std::string precision : {"fp32", "bf16"}) {
    for (int stage : {1, 3}) {
      for (std::string device : {"cpu", "nvme"}) {
        CAPTURE(precision);
        CAPTURE(stage);
        CAPTURE(device);
        OffloadCase plain{.stage = stage, .precision = precision, .sub_group_size = 3000};
        OffloadCase offloaded = plain;
        offloaded.offload_optimizer = device;
        offloaded.nvme_path = swap.path();
        if (stage == 3 && device == "nvme") {
          // ZeRO-Infinity whole: the parameter slices on disk too.
          offloaded.offload_param = "nvme";
          offloaded.max_in_cpu = 0;
        }
        std::vector<double> straight = straight_run(plain);
        CHECK(resumed_run(offloaded, plain, checkpoints.path()) == straight);
        CHECK(resumed_run(plain, offloaded, checkpoints.path()) == straight);
        cases += 1;
      }
    }
  }
  CHECK(cases == 8);
}

TEST_CASE("a full nvme_path is a one-line error on every rank; the last checkpoint still loads") {
  SharedTempDir checkpoints("offload-full-ckpt");
  SharedTempDir small("offload-full-disk");
  // 64 KiB: less than the 12 bytes a parameter of optimizer state the MLP's 26122 need.
  bool mounted = false;
  if (test_world().rank() == 0)
    mounted = ::mount("tmpfs", small.path().c_str(), "tmpfs", 0, "size=64k") == 0;
  Tensor flag = full({1}, mounted ? 1.0 : 0.0, {.dtype = DType::f64});
  test_world().broadcast(flag, 0);
  mounted = flag.item() != 0.0;
  if (!mounted) {
    MESSAGE("mounting a tmpfs was refused here: the full-disk case is not exercised");
    return;
  }
  OffloadCase plain{.stage = 2, .precision = "bf16", .sub_group_size = 3000};
  {
    Engine engine(offload_config(plain, test_world().size()), make_mlp(), test_world());
    train_steps(engine, 0, 3);
    engine.save_checkpoint(checkpoints.path(), "before");
  }
  OffloadCase full_disk = plain;
  full_disk.offload_optimizer = "nvme";
  full_disk.nvme_path = small.path();
  std::string error = error_of([&] {
    Engine engine(offload_config(full_disk, test_world().size()), make_mlp(), test_world());
  });
  INFO(error);
  CHECK(error.find('\n') == std::string::npos);
  bool named = error.find("No space left on device") != std::string::npos ||
               error.find("failed on another rank") != std::string::npos;
  CHECK(named);
  bool located = error.find("zerotrain_swap") != std::string::npos ||
                 error.find("nvme_path") != std::string::npos;
  CHECK(located);
  test_world().barrier();
  if (test_world().rank() == 0) CHECK(::umount(small.path().c_str()) == 0);
  // The checkpoint written before is whole: an engine loads it and trains on.
  Engine resumed(offload_config(plain, test_world().size()), make_mlp(), test_world());
  resumed.load_checkpoint(checkpoints.path(), "before");
  CHECK(resumed.global_steps() == 3);
  train_steps(resumed, 3, 5);
  CHECK(resumed.global_steps() == 5);
}

}  // namespace zt::dist
