// The monitors and the flops profiler through the engine: csv_monitor's files, read back, hold
// the loss and learning rate of every step at DeepSpeed's x (global samples) and the phase
// times with wall_clock_breakdown, and tensorboard's event file (decoded by
// tests/observe/event_file_reader.h) the same values; the flops profiler's report of its step (the
// one after profile_step steps) holds the MLP's analytic MACs, and goes to output_file.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/observe/event_file_reader.h"

namespace zt::dist {
namespace {

using comm::MpiCommunicator;
using comm::ProcessGrid;
using testing::test_world;
using namespace testing;

std::string shared_folder(const std::string& stem) {
  Tensor pid = full({1}, double(getpid()), {.dtype = DType::i64});
  test_world().broadcast(pid, 0);
  return (std::filesystem::temp_directory_path() / fmt::format("{}_{}", stem, int64_t(pid.item())))
      .string();
}

// The rows of a CSV monitor file: its header, then (x, value) pairs.
std::vector<std::pair<int64_t, double>> read_csv(const std::string& path, std::string& header) {
  std::ifstream file(path);
  REQUIRE_MESSAGE(file.good(), "cannot open " << path);
  std::getline(file, header);
  std::vector<std::pair<int64_t, double>> rows;
  std::string line;
  while (std::getline(file, line)) {
    size_t comma = line.find(',');
    REQUIRE(comma != std::string::npos);
    rows.emplace_back(std::stoll(line.substr(0, comma)), std::stod(line.substr(comma + 1)));
  }
  return rows;
}

// The one event file of `folder` holds the same values at the same steps as the CSV files (as
// floats: TensorBoard's simple_value).
void check_tensorboard_file(const std::string& folder,
                            const std::vector<std::pair<int64_t, double>>& loss_rows,
                            const std::vector<std::pair<int64_t, double>>& lr_rows) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(folder))
    files.push_back(entry.path());
  REQUIRE(files.size() == 1);
  std::vector<std::pair<int64_t, double>> losses, lrs;
  for (const DecodedEvent& event : read_event_file(files[0].string())) {
    for (const auto& [tag, value] : event.scalars) {
      if (tag == "Train/Samples/train_loss") losses.emplace_back(event.step, value);
      if (tag == "Train/Samples/lr") lrs.emplace_back(event.step, value);
    }
  }
  REQUIRE(losses.size() == loss_rows.size());
  REQUIRE(lrs.size() == lr_rows.size());
  for (size_t s = 0; s < losses.size(); ++s) {
    CHECK(losses[s].first == loss_rows[s].first);
    CHECK(losses[s].second == double(float(loss_rows[s].second)));
    CHECK(lrs[s].second == double(float(lr_rows[s].second)));
  }
}

TEST_CASE(
    "csv_monitor's and tensorboard's files read back the loss, lr and phase times of every step") {
  MpiCommunicator& world = test_world();
  std::string folder = shared_folder("zt_csv_monitor");
  std::string text = fmt::format(R"({{
    "train_batch_size": {},
    "steps_per_print": 2,
    "wall_clock_breakdown": true,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "scheduler": {{"type": "WarmupLR", "params": {{"warmup_min_lr": 0, "warmup_max_lr": 0.01,
                                                   "warmup_num_steps": 4}}}},
    "zero_optimization": {{"stage": 2}},
    "csv_monitor": {{"enabled": true, "output_path": "{}", "job_name": "mlp"}},
    "tensorboard": {{"enabled": true, "output_path": "{}/tensorboard", "job_name": "mlp"}}
  }})",
                                 kGlobalBatch, folder, folder);
  std::vector<double> losses, lrs;
  {
    ProcessGrid grid = ProcessGrid::data_parallel(world);
    Engine engine(parse_config(text, "test_config", world.size(), nullptr), make_mlp(),
                  grid.data_group());
    int64_t micro = kGlobalBatch / world.size();
    for (int step = 0; step < 5; ++step) {
      GlobalBatch batch = global_batch(step);
      int64_t first = world.rank() * micro;
      Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro));
      Tensor loss = cross_entropy(logits, ops::narrow(batch.targets, 0, first, micro));
      losses.push_back(loss.item());
      engine.backward(loss);
      engine.step();
      lrs.push_back(engine.get_lr());
    }
  }
  if (world.rank() == 0) {
    std::string header;
    auto loss_rows = read_csv(folder + "/mlp/Train_Samples_train_loss.csv", header);
    CHECK(header == "step,train_loss");
    REQUIRE(loss_rows.size() == 5);
    auto lr_rows = read_csv(folder + "/mlp/Train_Samples_lr.csv", header);
    REQUIRE(lr_rows.size() == 5);
    for (size_t s = 0; s < 5; ++s) {
      CHECK(loss_rows[s].first == int64_t(s + 1) * kGlobalBatch);
      CHECK(loss_rows[s].second == losses[s]);  // written with every digit
      CHECK(lr_rows[s].second == lrs[s]);
    }
    CHECK(lr_rows[0].second < lr_rows[3].second);  // the warmup rose
    auto forward_rows = read_csv(folder + "/mlp/Train_Samples_elapsed_time_ms_forward.csv", header);
    REQUIRE(forward_rows.size() == 5);
    for (const auto& [x, milliseconds] : forward_rows) CHECK(milliseconds > 0.0);
    CHECK(!std::filesystem::exists(folder + "/mlp/Train_Samples_loss_scale.csv"));  // no fp16
    check_tensorboard_file(folder + "/tensorboard/mlp", loss_rows, lr_rows);
  }
  world.barrier();
  if (world.rank() == 0) std::filesystem::remove_all(folder);
}

TEST_CASE("flops_profiler through the engine: its step's MACs are the MLP's, in output_file") {
  MpiCommunicator& world = test_world();
  std::string folder = shared_folder("zt_flops_profile");
  if (world.rank() == 0) std::filesystem::create_directories(folder);
  world.barrier();
  std::string report_path = folder + "/flops.txt";
  std::string text = fmt::format(R"({{
    "train_batch_size": {},
    "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}},
    "zero_optimization": {{"stage": 3, "stage3_param_persistence_threshold": 0}},
    "flops_profiler": {{"enabled": true, "profile_step": 2, "module_depth": -1, "top_modules": 2,
                       "detailed": true, "output_file": "{}"}}
  }})",
                                 kGlobalBatch, report_path);
  ProcessGrid grid = ProcessGrid::data_parallel(world);
  Engine engine(parse_config(text, "test_config", world.size(), nullptr), make_mlp(),
                grid.data_group());
  int64_t micro = kGlobalBatch / world.size();
  for (int step = 0; step < 4; ++step) {
    GlobalBatch batch = global_batch(step);
    int64_t first = world.rank() * micro;
    Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro));
    engine.backward(cross_entropy(logits, ops::narrow(batch.targets, 0, first, micro)));
    engine.step();
    // DeepSpeed profiles the step after profile_step steps: the third here.
    CHECK(engine.observers().flops_report().empty() == (step < 2));
  }
  const observe::FlopsProfiler* profiler = engine.observers().flops_profiler();
  REQUIRE(profiler != nullptr);
  // 64 -> 128 -> 128 -> 10 on this rank's micro-batch, whatever the stage partitioned.
  const int64_t macs = micro * (64 * 128 + 128 * 128 + 128 * 10);
  CHECK(profiler->totals().macs == macs);
  CHECK(profiler->totals().flops == 2 * macs);
  CHECK(profiler->totals().params == 64 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10);
  world.barrier();
  if (world.rank() == 0) {
    std::ifstream file(report_path);
    std::stringstream content;
    content << file.rdbuf();
    CHECK(content.str() == engine.observers().flops_report());
    CHECK(content.str().find("Profile Summary at step 3:") != std::string::npos);
    std::filesystem::remove_all(folder);
  }
}

}  // namespace
}  // namespace zt::dist
