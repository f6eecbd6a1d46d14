// What the offload tests share (tests/mpi/test_offload*.cpp): a swap folder every rank sees,
// and the engine config of one offload case over the small MLP of engine_test_helpers.h.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/factory.h"
#include "dist/config.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::dist {

constexpr int kOffloadSteps = 20;

// A fresh folder every rank sees (named by rank 0's pid), removed when the test ends.
class SharedTempDir {
 public:
  explicit SharedTempDir(const std::string& name) {
    Tensor pid = full({1}, double(getpid()), {.dtype = DType::f64});
    testing::test_world().broadcast(pid, 0);
    path_ = fmt::format("/tmp/zt-{}-{}", name, int64_t(pid.item()));
    std::filesystem::create_directories(path_);
  }
  ~SharedTempDir() {
    testing::test_world().barrier();
    if (testing::test_world().rank() == 0) std::filesystem::remove_all(path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct OffloadCase {
  int stage = 1;
  std::string precision = "fp32";  // "fp32", "bf16" or "fp16"
  std::string offload_optimizer = "none";
  int64_t sub_group_size = 1'000'000'000;
  int64_t gas = 1;
  std::string nvme_path;  // with offload_optimizer "nvme"
  bool pipeline = false;  // pipeline_read and pipeline_write
  std::string offload_param = "none";
  int64_t max_in_cpu = 1'000'000'000;  // offload_param "nvme": elements kept in host memory
  int64_t param_buffer_count = 5;
  int64_t prefetch_bucket_size = 50'000'000;  // stage3_prefetch_bucket_size
};

inline Config offload_config(const OffloadCase& c, int world) {
  std::string precision;
  if (c.precision == "bf16") precision = R"("bf16": {"enabled": true},)";
  if (c.precision == "fp16") precision = R"("fp16": {"enabled": true, "initial_scale_power": 8},)";
  std::string text = fmt::format(
      R"({{
    "train_batch_size": {}, "gradient_accumulation_steps": {},
    "gradient_clipping": 0.5, "steps_per_print": 0, {}
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01, "weight_decay": 0.01}}}},
    "scheduler": {{"type": "WarmupLR", "params": {{"warmup_num_steps": 10,
                  "warmup_min_lr": 0.001, "warmup_max_lr": 0.01}}}},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 20000,
                          "stage3_param_persistence_threshold": 0,
                          "stage3_prefetch_bucket_size": {},
                          "sub_group_size": {},
                          "offload_optimizer": {{"device": "{}", "nvme_path": "{}",
                                                 "pipeline_read": {}, "pipeline_write": {},
                                                 "buffer_count": {}}},
                          "offload_param": {{"device": "{}", "nvme_path": "{}",
                                             "max_in_cpu": {}, "buffer_count": {}}}}}
  }})",
      testing::kGlobalBatch, c.gas, precision, c.stage, c.prefetch_bucket_size, c.sub_group_size,
      c.offload_optimizer, c.nvme_path.empty() ? "/nowhere" : c.nvme_path, c.pipeline, c.pipeline,
      c.pipeline ? 9 : 3, c.offload_param, c.nvme_path.empty() ? "/nowhere" : c.nvme_path,
      c.max_in_cpu, c.param_buffer_count);
  return parse_config(text, "offload_test", world, nullptr);
}

}  // namespace zt::dist
