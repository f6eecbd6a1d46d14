// ZeRO-Offload and ZeRO-Infinity's optimizer in the engine: with offload_optimizer "cpu" or
// "nvme" the weights after 20 steps are bitwise those of the same run without it (stages 1-3,
// fp32 and bf16, sub-groups smaller than a group, clipping on), and the optimizer state leaves
// the device for host memory or swap files in the amounts the formulas give. Every rank count
// the suite runs (1, 2, 4, 8) checks the same.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "dist/partitioned_init.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/offload_test_helpers.h"

using namespace zt::comm;

namespace zt::dist {
namespace {

using namespace testing;

struct OffloadRun {
  std::vector<double> weights;
  ModelStateReport report;
  MemoryStats memory;
};

OffloadRun train(const OffloadCase& c) {
  MpiCommunicator& world = test_world();
  ProcessGrid grid = ProcessGrid::data_parallel(world);
  Engine engine(offload_config(c, world.size()), make_mlp(), grid.data_group());
  int64_t micro = kGlobalBatch / (c.gas * world.size());
  OffloadRun run;
  for (int step = 0; step < kOffloadSteps; ++step) {
    GlobalBatch batch = global_batch(step);
    for (int64_t m = 0; m < c.gas; ++m) {
      int64_t first = (m * world.size() + world.rank()) * micro;
      Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro)).to(DType::f32);
      engine.backward(cross_entropy(logits, ops::narrow(batch.targets, 0, first, micro)));
      engine.step();
    }
    if (step == 0) {
      run.report = engine.model_state_report();
      run.memory = cpu_allocator().accounting().stats();
    }
  }
  run.weights = concatenated(engine.consolidated_state_dict());
  return run;
}

}  // namespace

TEST_CASE("offload_optimizer cpu: weights bitwise equal to no offload after 20 steps") {
  int cases = 0;
  for (std::string precision : {"fp32", "bf16"}) {
    for (int stage : {1, 2, 3}) {
      // 3000 elements: sub-groups cut groups (of up to 16512 elements) and cross them.
      for (int64_t sub_group_size : {int64_t(1'000'000'000), int64_t(3000)}) {
        CAPTURE(precision);
        CAPTURE(stage);
        CAPTURE(sub_group_size);
        OffloadCase plain{.stage = stage, .precision = precision, .sub_group_size = sub_group_size};
        OffloadCase offloaded = plain;
        offloaded.offload_optimizer = "cpu";
        OffloadRun reference = train(plain);
        OffloadRun run = train(offloaded);
        CHECK(run.weights == reference.weights);
        CHECK(relative_error(run.weights, reference.weights) == 0.0);
        cases += 1;
      }
    }
  }
  CHECK(cases == 12);
}

TEST_CASE("offload_optimizer nvme: weights bitwise equal to no offload after 20 steps") {
  SharedTempDir folder("offload-nvme");
  int cases = 0;
  for (std::string precision : {"fp32", "bf16"}) {
    for (int stage : {1, 2, 3}) {
      CAPTURE(precision);
      CAPTURE(stage);
      // Sub-groups of 3000 elements: several per rank, so the pipeline has work to overlap.
      OffloadCase plain{.stage = stage, .precision = precision, .sub_group_size = 3000};
      OffloadRun reference = train(plain);
      for (bool pipeline : {false, true}) {
        CAPTURE(pipeline);
        OffloadCase swapped = plain;
        swapped.offload_optimizer = "nvme";
        swapped.nvme_path = folder.path();
        swapped.pipeline = pipeline;
        OffloadRun run = train(swapped);
        CHECK(run.weights == reference.weights);
        // Nothing of the optimizer state stays in memory: 12 bytes per owned element on disk.
        CHECK(run.report.optim_state_bytes == 0);
        CHECK(run.report.host_optim_state_bytes == 0);
        CHECK(run.report.expected_nvme_bytes ==
              12 * run.report.parameter_count / int64_t(test_world().size()));
        CHECK(std::abs(double(run.report.nvme_bytes - run.report.expected_nvme_bytes)) <=
              6.0 * 12.0 * double(test_world().size()));
        cases += 1;
      }
    }
  }
  CHECK(cases == 12);
}

TEST_CASE("offload_param cpu at stage 3: bitwise equal, the owned slices in host memory") {
  SharedTempDir folder("offload-param");
  int world = test_world().size();
  int cases = 0;
  for (std::string precision : {"fp32", "bf16"}) {
    OffloadCase plain{.stage = 3, .precision = precision, .sub_group_size = 3000};
    OffloadRun reference = train(plain);
    for (std::string optimizer : {"none", "cpu", "nvme"}) {
      CAPTURE(precision);
      CAPTURE(optimizer);
      OffloadCase offloaded = plain;
      offloaded.offload_param = "cpu";
      offloaded.offload_optimizer = optimizer;
      offloaded.nvme_path = folder.path();
      OffloadRun run = train(offloaded);
      CHECK(run.weights == reference.weights);
      const ModelStateReport& report = run.report;
      INFO(report.str());
      double slack = 6.0 * double(world - 1) * 4.0 + 1.0;
      // Between steps nothing of the parameters is on the device: the slices are on the host.
      CHECK(report.param_bytes == 0);
      CHECK(report.expected_param_bytes == 0);
      CHECK(std::abs(double(report.host_param_bytes - report.expected_host_param_bytes)) <= slack);
      CHECK(report.expected_host_param_bytes > 0);
      cases += 1;
    }
  }
  CHECK(cases == 6);
}

TEST_CASE("offload_param nvme at stage 3: bitwise equal, the slices beyond max_in_cpu on disk") {
  SharedTempDir folder("offload-param-nvme");
  int world = test_world().size();
  int cases = 0;
  for (std::string precision : {"fp32", "bf16"}) {
    OffloadCase plain{.stage = 3, .precision = precision, .sub_group_size = 3000};
    OffloadRun reference = train(plain);
    // max_in_cpu 0: every slice on disk, one swap buffer (every gather and update waits for
    // the one before it, prefetches land early to free it); 5000: the first layer's slice
    // (8320 / N) in memory for N >= 2, four buffers and reads ahead instead of prefetches.
    for (int64_t max_in_cpu : {int64_t(0), int64_t(5000)}) {
      for (std::string optimizer : {"cpu", "nvme"}) {
        CAPTURE(precision);
        CAPTURE(max_in_cpu);
        CAPTURE(optimizer);
        OffloadCase offloaded = plain;
        offloaded.offload_param = "nvme";
        offloaded.offload_optimizer = optimizer;
        offloaded.nvme_path = folder.path();
        offloaded.max_in_cpu = max_in_cpu;
        offloaded.param_buffer_count = max_in_cpu == 0 ? 1 : 4;
        // Without prefetched gathers the spare buffers read the next modules' slices ahead.
        if (max_in_cpu != 0) offloaded.prefetch_bucket_size = 0;
        OffloadRun run = train(offloaded);
        CHECK(run.weights == reference.weights);
        const ModelStateReport& report = run.report;
        INFO(report.str());
        CHECK(report.param_bytes == 0);
        int64_t element = precision == "fp32" ? 4 : 2;
        int64_t on_disk =
            report.nvme_bytes - (optimizer == "nvme" ? 12 * report.parameter_count / world : 0);
        // Files hold whole group slices; padding adds < N elements a group.
        CHECK(std::abs(double(on_disk + report.host_param_bytes -
                              element * report.parameter_count / world)) <=
              3.0 * double(world) * double(element));
        if (max_in_cpu == 0) CHECK(report.host_param_bytes == 0);
        cases += 1;
      }
    }
  }
  CHECK(cases == 8);
}

TEST_CASE("offload_param nvme: a module larger than buffer_size is refused naming both") {
  SharedTempDir folder("offload-param-small");
  OffloadCase c{.stage = 3,
                .offload_optimizer = "cpu",
                .nvme_path = folder.path(),
                .offload_param = "nvme",
                .max_in_cpu = 0};
  Config config = offload_config(c, test_world().size());
  config.zero_optimization.offload_param.buffer_size = 100;
  std::string error;
  try {
    Engine engine(config, make_mlp(), test_world());
  } catch (const std::exception& failure) {
    error = failure.what();
  }
  CHECK(error.find("zero_optimization.offload_param.buffer_size: module '") != std::string::npos);
  CHECK(error.find("but a swap buffer holds 100") != std::string::npos);
}

TEST_CASE(
    "offload: step_report shows host and NVMe bytes; offload_param nvme needs the optimizer's") {
  SharedTempDir folder("offload-report");
  OffloadCase c{.stage = 3,
                .precision = "bf16",
                .offload_optimizer = "nvme",
                .nvme_path = folder.path(),
                .offload_param = "nvme",
                .max_in_cpu = 0};
  {
    Engine engine(offload_config(c, test_world().size()), make_mlp(), test_world());
    std::string report = engine.step_report();
    INFO(report);
    CHECK(report.find("optim (host)") != std::string::npos);
    CHECK(report.find("params (host)") != std::string::npos);
    CHECK(report.find("NVMe files") != std::string::npos);
    CHECK(engine.model_state_report().nvme_bytes > 0);
  }
  c.offload_optimizer = "none";
  std::string error;
  try {
    Engine engine(offload_config(c, test_world().size()), make_mlp(), test_world());
  } catch (const std::invalid_argument& failure) {
    error = failure.what();
  }
  CHECK(error ==
        "offload_test: zero_optimization.offload_param: device \"nvme\" needs "
        "offload_optimizer too (\"cpu\" or \"nvme\")");
}

TEST_CASE("offload nvme: a missing nvme_path is refused at construction naming key and path") {
  for (std::string which : {"offload_optimizer", "offload_param"}) {
    CAPTURE(which);
    OffloadCase c{.stage = 3, .offload_optimizer = "nvme", .nvme_path = "/tmp/zt-no-such-folder"};
    if (which == "offload_param") {
      c.offload_optimizer = "cpu";
      c.offload_param = "nvme";
      c.max_in_cpu = 0;
    }
    std::string error;
    try {
      Engine engine(offload_config(c, test_world().size()), make_mlp(), test_world());
    } catch (const std::exception& failure) {
      error = failure.what();
    }
    INFO(error);
    CHECK(error.find("zero_optimization." + which + ".nvme_path") != std::string::npos);
    CHECK(error.find("/tmp/zt-no-such-folder") != std::string::npos);
    CHECK(error.find('\n') == std::string::npos);
  }
}

TEST_CASE("offload_optimizer cpu with fp16 loss scaling and gradient accumulation is bitwise") {
  // At stages 2 and 3 the micro-batches accumulate in the host's 16-bit gradient slice.
  for (int stage : {1, 2, 3}) {
    CAPTURE(stage);
    OffloadCase plain{.stage = stage, .precision = "fp16", .gas = 3};
    OffloadCase offloaded = plain;
    offloaded.offload_optimizer = "cpu";
    CHECK(train(offloaded).weights == train(plain).weights);
  }
}

TEST_CASE("offload_optimizer cpu: the optimizer state leaves the device for host memory") {
  int world = test_world().size();
  for (std::string precision : {"fp32", "bf16"}) {
    for (int stage : {1, 2, 3}) {
      CAPTURE(precision);
      CAPTURE(stage);
      OffloadRun run = train({.stage = stage, .precision = precision, .offload_optimizer = "cpu"});
      const ModelStateReport& report = run.report;
      INFO(report.str());
      double slack = 6.0 * double(world - 1) * 12.0 + 1.0;  // padding: < N elements a group
      CHECK(report.optim_state_bytes == 0);                 // nothing of it on the device
      CHECK(report.expected_optim_state_bytes == 0);
      // fp32 master + two moments = 12 bytes, and the fp32 gradient = 4, per owned element.
      CHECK(std::abs(double(report.host_optim_state_bytes -
                            report.expected_host_optim_state_bytes)) <= slack);
      CHECK(std::abs(double(report.host_grad_bytes - report.expected_host_grad_bytes)) <= slack);
      CHECK(report.expected_host_optim_state_bytes == 12 * report.parameter_count / int64_t(world));
      CHECK(std::abs(double(report.param_bytes - report.expected_param_bytes)) <= slack);
      CHECK(run.memory.live(MemoryTag::optim_state) == 0);
      CHECK(run.memory.live(MemoryTag::optim_state_offload) == report.host_optim_state_bytes);
      // Gradients between steps: at stage 1 the full buffer (the model's .grad) stays on the
      // device; at stages 2 and 3 the owned slice accumulates on the host, none on the device.
      const int64_t element_bytes = precision == "fp32" ? 4 : 2;
      const int64_t psi = report.parameter_count;
      CHECK(report.expected_grad_bytes == (stage == 1 ? element_bytes * psi : 0));
      CHECK(run.memory.live(MemoryTag::grad) == report.grad_bytes);
      CHECK(std::abs(double(report.grad_bytes - report.expected_grad_bytes)) <=
            (stage == 1 ? 6.0 * double(world - 1) * 4.0 : 0.0));  // padding, as above
      int64_t host_copy = stage == 1 || element_bytes == 4 ? 0 : element_bytes * psi / world;
      CHECK(report.expected_host_grad_bytes == 4 * psi / world + host_copy);
    }
  }
}

TEST_CASE(
    "offload at stage 3: building the engine never puts the gradient partition on the device") {
  // The model is built inside PartitionedInit with offload_param, so the device holds none of
  // it; a limit of half the 2 Psi / N bytes of the bf16 gradient partition then holds the
  // engine's construction: the partition must go straight to host memory.
  MpiCommunicator& world = test_world();
  ProcessGrid grid = ProcessGrid::data_parallel(world);
  Config config = offload_config(
      {.stage = 3, .precision = "bf16", .offload_optimizer = "cpu", .offload_param = "cpu"},
      world.size());
  std::shared_ptr<nn::Module> model;
  {
    PartitionedInit scope(world, config);
    model = make_mlp();
  }
  MemoryAccounting& accounting = cpu_allocator().accounting();
  const int64_t partition_bytes = 2 * model->num_parameters() / int64_t(world.size());
  accounting.set_limit(accounting.stats().device_live_bytes + partition_bytes / 2);
  std::unique_ptr<Engine> engine;
  CHECK_NOTHROW(engine = std::make_unique<Engine>(config, model, grid.data_group()));
  accounting.set_limit(0);
  CHECK(accounting.stats().live(MemoryTag::grad_offload) >= partition_bytes);
}

TEST_CASE("offload_optimizer needs Adam: SGD is refused naming the key") {
  MpiCommunicator& world = test_world();
  ProcessGrid grid = ProcessGrid::data_parallel(world);
  Config config = offload_config({.stage = 2, .offload_optimizer = "cpu"}, world.size());
  config.optimizer.type = "SGD";
  try {
    Engine engine(config, make_mlp(), grid.data_group());
    FAIL("no error");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()).find("zero_optimization.offload_optimizer") !=
          std::string::npos);
  }
}

}  // namespace zt::dist
