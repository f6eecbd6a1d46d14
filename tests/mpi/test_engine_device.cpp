// The engine with its model on a GPU, on every rank of the test world: the ranks share the
// machine's GPUs, so ZeRO traffic goes through MPI with pinned staging (and through NCCL when
// every rank has a GPU of its own). Checks, as on the host: ZeRO stages 1-3 give weights
// bitwise equal to stage 0 (f32 and fp16), the GPU run matches the host run of the same
// training, and checkpoints saved from the GPU load on the host. Without a GPU the cases that
// need one are skipped (ZT_NEEDS_CUDA_DEVICE); the dist_backend choice is checked on the host.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "dist/initialize.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

using namespace zt::comm;

namespace zt::dist {
namespace {

using namespace testing;

constexpr int kSteps = 12;

constexpr const char* kAdam = R"({"type": "Adam", "params": {"lr": 0.01, "weight_decay": 0.01}})";
// Comparisons across summation orders (GPU against host, NCCL against MPI) train with SGD:
// Adam's first step moves a weight by about lr * sign(g), so a gradient element that nearly
// cancels can flip its sign under another order and move the weights by 2e-3 relative; SGD is
// continuous in the gradient.
constexpr const char* kSgd =
    R"({"type": "SGD", "params": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}})";

Config device_config(int stage, const std::string& precision, const char* optimizer = kAdam) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {},
    "gradient_accumulation_steps": 1,
    "gradient_clipping": 0.5,
    "steps_per_print": 0,
    "optimizer": {},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 20000,
                          "stage3_param_persistence_threshold": 0}}{}
  }})",
                                 kGlobalBatch, optimizer, stage, precision);
  return parse_config(text, "device_test_config", test_world().size(), nullptr);
}

// This rank's GPU: its local rank modulo the GPU count (ranks share GPUs when there are more
// ranks than GPUs).
Device rank_device() {
  return Device::cuda(test_runtime().local_rank() % cuda_device_count());
}

struct DeviceRun {
  std::vector<double> weights;
  std::vector<double> losses;
  std::string communicator;
  Device device = Device::cpu();
};

DeviceRun train_on(Device device, int stage, const std::string& precision = "",
                   DistBackend backend = DistBackend::mpi, const char* optimizer = kAdam) {
  std::shared_ptr<nn::Module> model = make_mlp();
  model->to(device);
  Initialized initialized =
      initialize(test_runtime(), device_config(stage, precision, optimizer), model, backend);
  Engine& engine = *initialized.engine;
  int world = engine.world_size();
  int64_t micro = kGlobalBatch / world;
  DeviceRun run;
  for (int step = 0; step < kSteps; ++step) {
    GlobalBatch batch = global_batch(step);
    int64_t first = engine.rank() * micro;
    Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro).to(device));
    Tensor loss = cross_entropy(logits.to(DType::f32),
                                ops::narrow(batch.targets, 0, first, micro).to(device));
    engine.backward(loss);
    engine.step();
    run.losses.push_back(engine.last_global_loss());
  }
  run.weights = concatenated(engine.consolidated_state_dict());
  run.communicator = engine.data_parallel_communicator().name();
  run.device = engine.device();
  return run;
}

TEST_SUITE("cuda_engine") {
  TEST_CASE("dist_backend nccl with the model on the host is refused on every rank") {
    std::shared_ptr<nn::Module> model = make_mlp();
    CHECK_THROWS_WITH_AS(initialize(test_runtime(), device_config(0, ""), model, DistBackend::nccl),
                         doctest::Contains("dist_backend nccl: NCCL moves GPU tensors"),
                         std::invalid_argument);
    // automatic and mpi keep a host model on MPI.
    for (DistBackend backend : {DistBackend::automatic, DistBackend::mpi}) {
      Initialized initialized =
          initialize(test_runtime(), device_config(1, ""), make_mlp(), backend);
      CHECK(initialized.engine->data_parallel_communicator().name() == "mpi");
      CHECK(initialized.engine->device() == Device::cpu());
      CHECK(initialized.device_data_group == nullptr);
    }
  }

  TEST_CASE("on a GPU, ZeRO stages 1-3 give weights bitwise equal to stage 0 (f32, MPI staging)" *
            ZT_NEEDS_CUDA_DEVICE) {
    DeviceRun reference = train_on(rank_device(), 0);
    CHECK(reference.device == rank_device());
    CHECK(reference.communicator == "mpi");
    for (int stage = 1; stage <= 3; ++stage) {
      CAPTURE(stage);
      DeviceRun run = train_on(rank_device(), stage);
      CHECK(run.weights == reference.weights);
      CHECK(run.losses == reference.losses);
    }
  }

  TEST_CASE("on a GPU, fp16 ZeRO stages 1-3 give weights bitwise equal to stage 0" *
            ZT_NEEDS_CUDA_DEVICE) {
    const std::string fp16 = R"(, "fp16": {"enabled": true, "initial_scale_power": 12})";
    DeviceRun reference = train_on(rank_device(), 0, fp16);
    for (int stage = 1; stage <= 3; ++stage) {
      CAPTURE(stage);
      DeviceRun run = train_on(rank_device(), stage, fp16);
      CHECK(run.weights == reference.weights);
    }
  }

  TEST_CASE("the GPU run of a training matches the host run of the same training" *
            ZT_NEEDS_CUDA_DEVICE) {
    // cuBLAS and the host GEMM sum in different orders: f32 rounding differences, which SGD
    // (see kSgd) carries through 12 steps without amplifying them.
    DeviceRun host = train_on(Device::cpu(), 2, "", DistBackend::mpi, kSgd);
    DeviceRun gpu = train_on(rank_device(), 2, "", DistBackend::mpi, kSgd);
    CHECK(relative_error(gpu.weights, host.weights) < 1e-4);
    CHECK(relative_error(gpu.losses, host.losses) < 1e-4);
  }

  TEST_CASE("with a GPU per rank, automatic picks NCCL and trains as MPI does" *
            ZT_NEEDS_CUDA_DEVICE) {
    bool own_gpu = test_runtime().local_size() <= cuda_device_count();
    DeviceRun mpi = train_on(rank_device(), 2, "", DistBackend::mpi, kSgd);
    DeviceRun automatic = train_on(rank_device(), 2, "", DistBackend::automatic, kSgd);
    if (!own_gpu) {
      MESSAGE("ranks share GPUs: automatic must fall back to MPI");
      CHECK(automatic.communicator == "mpi");
      CHECK(automatic.weights == mpi.weights);
      return;
    }
#ifdef ZT_NCCL
    CHECK(automatic.communicator == "nccl");
    // NCCL sums f32 in its own order: equal up to rounding, not bitwise, across ranks > 1.
    CHECK(relative_error(automatic.weights, mpi.weights) < 1e-5);
#endif
  }

  TEST_CASE("a checkpoint saved on the GPU loads into a host engine with the same weights" *
            ZT_NEEDS_CUDA_DEVICE) {
    namespace fs = std::filesystem;
    // One folder per job (rank 0's process id), so concurrent jobs never share it.
    Tensor job = full({1}, double(getpid()), {.dtype = DType::f64});
    test_world().broadcast(job, 0);
    std::string dir =
        (fs::temp_directory_path() / fmt::format("zt_device_checkpoint_{}", int64_t(job.item())))
            .string();
    std::vector<double> saved;
    {
      std::shared_ptr<nn::Module> model = make_mlp();
      model->to(rank_device());
      Initialized initialized = initialize(test_runtime(), device_config(3, ""), model);
      Engine& engine = *initialized.engine;
      int64_t micro = kGlobalBatch / engine.world_size();
      GlobalBatch batch = global_batch(0);
      int64_t first = engine.rank() * micro;
      engine.backward(cross_entropy(
          engine.forward(ops::narrow(batch.inputs, 0, first, micro).to(rank_device())),
          ops::narrow(batch.targets, 0, first, micro).to(rank_device())));
      engine.step();
      engine.save_checkpoint(dir, "device");
      saved = concatenated(engine.consolidated_state_dict());
    }
    Initialized host = initialize(test_runtime(), device_config(1, ""), make_mlp());
    host.engine->load_checkpoint(dir, "device");
    CHECK(concatenated(host.engine->consolidated_state_dict()) == saved);
    test_world().barrier();
    if (test_world().rank() == 0) fs::remove_all(dir);
  }

}  // TEST_SUITE("cuda_engine")

}  // namespace
}  // namespace zt::dist
