// The default generators (dropout) across a checkpoint of the pipeline GPT with dropout 0.1,
// saved at (pp, dp) = (2, world / 2): resumed at the same layout every rank draws the masks of
// the run that kept going (bitwise losses); loaded at pp 1 and pp 4 every rank continues the
// saved seed past the largest offset any saved rank reached (docs/checkpoints.md), so no mask
// of the resumed run repeats one drawn before the save, and two such loads draw alike.
// The generators seeded per tensor rank (attention dropout inside the tensor-parallel region,
// tensor_parallel/tensor_rank_generator.h), with the pipeline GPT of tensor-parallel layers
// saved at (pp, tp, dp) = (2, 2, world / 4):
// - resumed at that layout by a run built from other seeds, the losses and the weights are
//   bitwise those of the run that kept going;
// - a checkpoint without them (saved before they were) loads with a warning naming it, keeps
//   the generators as built, and its resumed losses differ (what the first check would see if
//   the generators were not saved);
// - loaded at tp 1, each generator continues the saved group's base seed past the largest
//   offset any rank had reached (docs/checkpoints.md).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "comm/process_grid.h"
#include "core/generator.h"
#include "core/safetensors.h"
#include "dist/checkpoint_generators.h"
#include "tensor_parallel/tensor_rank_generator.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/pipeline_test_helpers.h"
#include "tests/mpi/shared_scratch.h"

namespace zt::pipeline {
namespace {

namespace fs = std::filesystem;
using namespace test_helpers;
using ::zt::testing::SharedScratch;
using ::zt::testing::test_world;

models::GPTConfig dropout_gpt_config() {
  models::GPTConfig config = tiny_gpt_config();
  config.dropout = 0.1;
  return config;
}

// The seed layer `layer`'s attention draws from on tensor rank r with base `dropout_seed`
// (tensor_parallel/tensor_rank_generator.h), written out: base + 2718 + layer * 2^16 + r.
uint64_t attention_seed(uint64_t dropout_seed, int64_t layer, int tensor_rank) {
  return dropout_seed + 2718 + uint64_t(layer) * 65536 + uint64_t(tensor_rank);
}

// The GPT-2 block index of a stage's attention module "<spec index>.attn" (spec 0 is the
// embedding layer).
int64_t block_of(const std::string& attention) {
  const std::string spec = attention.substr(0, attention.rfind(".attn"));
  return std::stoll(spec.substr(spec.rfind('.') + 1)) - 1;
}

// The pipeline GPT with dropout on (stages, tensor, the rest data); the weights and the default
// generator from `seed`. `tensor` 0: the plain layers; >= 1: the split layers over a tensor
// group of that size, their per-tensor-rank generators from `dropout_seed`.
struct DropoutRun {
  std::unique_ptr<comm::ProcessGrid> grid;
  std::unique_ptr<PipelineEngine> engine;

  DropoutRun(int stages, uint64_t seed, int tensor = 0, uint64_t dropout_seed = 1234) {
    comm::Communicator& world = test_world();
    const int tensor_size = std::max(tensor, 1);
    const int replicas = world.size() / (stages * tensor_size);
    grid = std::make_unique<comm::ProcessGrid>(
        world, comm::GridShape{.data = replicas, .pipeline = stages, .tensor = tensor_size});
    manual_seed(seed);
    models::GPT whole(dropout_gpt_config());
    NamedTensors initial = whole.named_parameters();
    const bool split = tensor > 0;
    engine = std::make_unique<PipelineEngine>(
        pipeline_config(1, replicas, 1, 0, tensor_size),
        split ? gpt_layer_specs(dropout_gpt_config(), grid->tensor_group(), dropout_seed)
              : gpt_layer_specs(dropout_gpt_config()),
        split ? gpt_vocab_parallel_loss(grid->tensor_group()) : LossFunction(gpt_next_token_loss),
        micro_batch(0, 0).inputs, *grid, &initial);
  }

  std::map<std::string, Generator*> generators() {
    return tensor_parallel::tensor_rank_generators(engine->module());
  }

  std::vector<double> train(int first, int last) {
    std::vector<double> losses;
    for (int step = first; step < last; ++step) {
      int next = grid->coordinates().data * kMicroBatches;
      losses.push_back(engine->train_batch([&] { return micro_batch(step, next++); }));
    }
    return losses;
  }
};

TEST_CASE("dropout_generators_resume_bitwise_at_the_layout_and_by_the_rule_at_another") {
  comm::Communicator& world = test_world();
  if (world.size() != 4 && world.size() != 8) return;
  SharedScratch scratch(world, "generator-checkpoint");
  const std::vector<double> straight = DropoutRun(2, 5).train(0, 4);
  uint64_t saved_seed = 0;
  double largest_offset = 0.0;
  {
    DropoutRun first(2, 5);
    first.train(0, 2);
    first.engine->engine().save_checkpoint(scratch.path());
    saved_seed = default_generator().seed();
    Tensor offset = full({1}, double(default_generator().offset()), {.dtype = DType::f64});
    world.all_reduce(offset, comm::ReduceOperation::max);
    largest_offset = offset.item();
  }
  {
    DropoutRun resumed(2, 77);
    resumed.engine->engine().load_checkpoint(scratch.path());
    CHECK(resumed.train(2, 4) == std::vector<double>(straight.begin() + 2, straight.end()));
  }
  for (int stages : {1, 4}) {
    CAPTURE(stages);
    std::vector<std::vector<double>> continued;
    for (int load = 0; load < 2; ++load) {
      DropoutRun loaded(stages, 77 + uint64_t(load));
      loaded.engine->engine().load_checkpoint(scratch.path());
      CHECK(default_generator().seed() == saved_seed);
      CHECK(double(default_generator().offset()) == largest_offset);
      continued.push_back(loaded.train(2, 3));
    }
    CHECK(continued[0] == continued[1]);
  }
}

bool bitwise_equal(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    Tensor x = a[i].second.contiguous(), y = b[i].second.contiguous();
    if (a[i].first != b[i].first || x.sizes() != y.sizes() ||
        std::memcmp(x.data_ptr<float>(), y.data_ptr<float>(), size_t(x.numel()) * 4) != 0)
      return false;
  }
  return true;
}

// What `body` writes to this process's stderr, through a file at `path`.
std::string stderr_of(const std::function<void()>& body, const std::string& path) {
  std::fflush(stderr);
  const int saved = dup(2);
  const int file = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(file, 2);
  close(file);
  auto restore = [&] {
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
  };
  try {
    body();
  } catch (...) {
    restore();
    throw;
  }
  restore();
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A copy of the checkpoint in `tag_dir` as one saved before the per-tensor-rank generators
// were: no "tensor_rank_generators" in the optimizer files, no "largest_generator_offsets" in
// the model files. One rank writes it.
void write_older_copy(const std::string& tag_dir, const std::string& copy) {
  fs::copy(tag_dir, copy, fs::copy_options::recursive);
  for (const auto& entry : fs::directory_iterator(copy)) {
    const std::string path = entry.path().string();
    const bool optimizer = path.find("_optim_states") != std::string::npos;
    if (!optimizer && path.find("_model_states") == std::string::npos) continue;
    SafetensorsContents file = load_safetensors(path);
    nlohmann::json record = nlohmann::json::parse(file.metadata.at("zerotrain"));
    record.erase(optimizer ? "tensor_rank_generators" : "largest_generator_offsets");
    file.metadata["zerotrain"] = record.dump();
    save_safetensors(path, file.tensors, file.metadata);
  }
}

TEST_CASE("tensor_rank_generators_resume_bitwise_and_an_older_checkpoint_warns") {
  comm::Communicator& world = test_world();
  if (world.size() != 4 && world.size() != 8) return;
  SharedScratch scratch(world, "tensor-rank-generators");
  DropoutRun straight(2, 5, 2, 1234);
  const std::vector<double> straight_losses = straight.train(0, 4);
  const NamedTensors straight_weights = straight.engine->whole_model_weights();
  std::string tag_dir;
  uint64_t largest_offset = 0;
  {
    DropoutRun first(2, 5, 2, 1234);
    first.train(0, 2);
    REQUIRE(!first.generators().empty());
    tag_dir = first.engine->engine().save_checkpoint(scratch.path(), "half");
    double mine = 0.0;
    for (const auto& [name, generator] : first.generators())
      mine = std::max(mine, double(generator->offset()));
    Tensor offset = full({1}, mine, {.dtype = DType::f64});
    world.all_reduce(offset, comm::ReduceOperation::max);
    largest_offset = uint64_t(offset.item());
    CHECK(largest_offset > 0);  // dropout drew from them
  }
  {
    DropoutRun resumed(2, 77, 2, 999);  // other weights and other generator seeds
    resumed.engine->engine().load_checkpoint(scratch.path(), "half");
    CHECK(resumed.train(2, 4) ==
          std::vector<double>(straight_losses.begin() + 2, straight_losses.end()));
    CHECK(bitwise_equal(resumed.engine->whole_model_weights(), straight_weights));
  }
  const std::string older = scratch.path() + "/older";
  if (world.rank() == 0) write_older_copy(tag_dir, older);
  world.barrier();
  {
    DropoutRun resumed(2, 77, 2, 999);
    const std::string printed =
        stderr_of([&] { resumed.engine->engine().load_checkpoint(scratch.path(), "older"); },
                  fmt::format("{}/stderr_{}", scratch.path(), world.rank()));
    const std::string warning = "warning: " + dist::missing_tensor_rank_generators(older) + "\n";
    const bool prints =
        resumed.grid->coordinates().data == 0 && resumed.grid->coordinates().tensor == 0;
    CHECK((printed.find(warning) != std::string::npos) == prints);
    for (const auto& [name, generator] : resumed.generators()) {
      CAPTURE(name);
      CHECK(generator->seed() ==
            attention_seed(999, block_of(name), resumed.grid->coordinates().tensor));
      CHECK(generator->offset() == 0);
    }
    CHECK(resumed.train(2, 4) !=
          std::vector<double>(straight_losses.begin() + 2, straight_losses.end()));
  }
  {
    DropoutRun loaded(2, 77, 1, 999);  // split layers at tp 1: one generator per attention
    loaded.engine->engine().load_checkpoint(scratch.path(), "half");
    REQUIRE(!loaded.generators().empty());
    for (const auto& [name, generator] : loaded.generators()) {
      CAPTURE(name);
      // The saved group's base of the layer plus rank 0.
      CHECK(generator->seed() == attention_seed(1234, block_of(name), 0));
      CHECK(generator->offset() == largest_offset);
    }
    CHECK(loaded.train(2, 3).size() == 1);
  }
}

}  // namespace
}  // namespace zt::pipeline
