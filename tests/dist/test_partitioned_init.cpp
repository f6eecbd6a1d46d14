// Partitioned construction on one process playing each rank: the slices a model built inside
// PartitionedInit holds equal, bit for bit, the slices of the same model built whole and laid
// out by the engine's plan (GPT with its tied head, groups kept whole by the threshold, inits
// after the cut, conversions); construction never holds more than the slices plus one module's
// parameters; misuse is refused naming the parameter.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/elementwise.h"
#include "core/partitioned_values.h"
#include "dist/partitioned_init.h"
#include "dist/zero/partition_plan.h"
#include "models/gpt.h"
#include "nn/init.h"
#include "nn/nn.h"

using namespace zt;
using namespace zt::dist;

namespace {

models::GPTConfig small_gpt(models::Architecture architecture = models::Architecture::gpt2) {
  models::GPTConfig config;
  config.architecture = architecture;
  config.vocab_size = 61;  // odd sizes, so groups need padding
  config.block_size = 12;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = architecture == models::Architecture::llama ? 20 : 18;  // even heads for rotary
  return config;
}

std::shared_ptr<models::GPT> whole_gpt(
    uint64_t seed, models::Architecture architecture = models::Architecture::gpt2) {
  manual_seed(seed);
  return std::make_shared<models::GPT>(small_gpt(architecture));
}

std::shared_ptr<models::GPT> partitioned_gpt(
    uint64_t seed, int world, int rank, int64_t threshold,
    models::Architecture architecture = models::Architecture::gpt2) {
  manual_seed(seed);
  PartitionedInit scope(world, rank, threshold);
  auto model = std::make_shared<models::GPT>(small_gpt(architecture));
  scope.close();
  return model;
}

// Slice `rank` of each group of the whole model's plan: its parameters end to end, padded.
std::vector<double> reference_slice(const FlatGroup& group, int rank) {
  std::vector<double> flat(size_t(group.padded_numel), 0.0);
  for (const PlannedParam& entry : group.params) {
    std::vector<double> values = entry.param.to_vector();
    std::copy(values.begin(), values.end(), flat.begin() + entry.offset);
  }
  auto begin = flat.begin() + group.slice_begin(rank);
  return {begin, begin + group.slice_numel()};
}

// The cut model's parameter of the same name.
Tensor parameter_named(nn::Module& model, const std::string& name) {
  for (auto& [candidate, param] : model.named_parameters())
    if (candidate == name) return param;
  FAIL("no parameter " << name);
  return Tensor();
}

// Every group of the whole model's plan against the cut model: partitioned groups hold the
// reference slice, groups under the threshold hold the whole values.
void check_against_whole(nn::Module& whole, nn::Module& cut, int world, int rank,
                         int64_t threshold) {
  PartitionPlan plan = plan_by_module(whole, world, threshold);
  for (const FlatGroup& group : plan.groups) {
    CAPTURE(group.module_name);
    Tensor first = parameter_named(cut, group.params.front().name);
    CHECK(is_partitioned(first) == group.partitioned);
    if (!group.partitioned) {
      for (const PlannedParam& entry : group.params)
        CHECK(parameter_named(cut, entry.name).to_vector() == entry.param.to_vector());
      continue;
    }
    const PartitionedValues& values = *first.impl()->partitioned;
    CHECK(values.group->padded_numel == group.padded_numel);
    CHECK(values.group->owned.to_vector() == reference_slice(group, rank));
    for (const PlannedParam& entry : group.params) {
      const PartitionedValues& cut_entry = *parameter_named(cut, entry.name).impl()->partitioned;
      CHECK(cut_entry.offset == entry.offset);
      CHECK(cut_entry.name == entry.name);
    }
  }
}

}  // namespace

TEST_CASE("a GPT built partitioned holds, on each rank, the whole GPT's slices bit for bit") {
  for (int world : {1, 2, 3, 4}) {
    for (int rank = 0; rank < world; ++rank) {
      for (int64_t threshold : {int64_t(0), int64_t(40)}) {  // 40 keeps the LayerNorms whole
        CAPTURE(world);
        CAPTURE(rank);
        CAPTURE(threshold);
        auto whole = whole_gpt(11);
        const uint64_t whole_offset = default_generator().offset();
        auto cut = partitioned_gpt(11, world, rank, threshold);
        // The next draw after construction is the same: the cut draws reserved whole counts.
        CHECK(default_generator().offset() == whole_offset);
        check_against_whole(*whole, *cut, world, rank, threshold);
        // The tied head is the embedding's parameter, cut once in wte's group.
        CHECK(cut->lm_head()->weight.is_same(cut->token_embedding()->weight));
      }
    }
  }
}

TEST_CASE("a Llama built partitioned (embed_tokens re-initialised after the cut) matches too") {
  for (int world : {2, 3}) {
    for (int rank = 0; rank < world; ++rank) {
      CAPTURE(world);
      CAPTURE(rank);
      auto whole = whole_gpt(13, models::Architecture::llama);
      auto cut = partitioned_gpt(13, world, rank, 0, models::Architecture::llama);
      check_against_whole(*whole, *cut, world, rank, 0);
    }
  }
}

TEST_CASE("building partitioned holds at most the slices plus one module's parameters whole") {
  constexpr int kWorld = 8;
  auto whole = whole_gpt(5);
  PartitionPlan plan = plan_by_module(*whole, kWorld, 0);
  int64_t largest_group_bytes = 0;
  for (const FlatGroup& group : plan.groups)
    largest_group_bytes = std::max(largest_group_bytes, group.numel * int64_t(sizeof(float)));
  const int64_t whole_bytes = whole->num_parameters() * int64_t(sizeof(float));
  whole.reset();

  MemoryAccounting& accounting = cpu_allocator().accounting();
  const int64_t live_before = accounting.stats().live(MemoryTag::param);
  accounting.reset_peak();
  auto cut = partitioned_gpt(5, kWorld, 3, 0);
  MemoryStats after = accounting.stats();
  const int64_t slices = after.live(MemoryTag::param) - live_before;
  const int64_t peak = after.peak(MemoryTag::param) - live_before;
  MESSAGE("whole " << whole_bytes << " B, slices " << slices << " B, construction peak " << peak
                   << " B, largest module " << largest_group_bytes << " B");
  CHECK(slices <= whole_bytes / kWorld + int64_t(plan.groups.size()) * kWorld * 4);
  CHECK(peak <= slices + largest_group_bytes);
  CHECK(peak < whole_bytes / 2);
}

TEST_CASE("inits and conversions after the cut give the owned part of the whole result") {
  auto build = [] {
    return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(7, 9), std::make_shared<nn::Tanh>(),
        std::make_shared<nn::Linear>(9, 5)});
  };
  auto reinit = [](nn::Module& model) {
    NamedTensors params = model.named_parameters();
    nn::init::normal_(params[0].second, 0.5, 2.0);
    nn::init::uniform_(params[1].second, -3.0, 1.0);
    nn::init::constant_(params[2].second, 0.25);
    nn::init::kaiming_uniform_(params[2].second, 1.0);
    model.to(DType::bf16);
  };
  manual_seed(3);
  auto whole = build();
  reinit(*whole);
  const uint64_t whole_offset = default_generator().offset();
  for (int rank = 0; rank < 3; ++rank) {
    CAPTURE(rank);
    manual_seed(3);
    PartitionedInit scope(3, rank, 0);
    auto cut = build();
    reinit(*cut);  // inside the scope: the children are cut, the root has no parameters
    scope.close();
    CHECK(default_generator().offset() == whole_offset);
    CHECK(parameter_named(*cut, "0.weight").dtype() == DType::bf16);
    check_against_whole(*whole, *cut, 3, rank, 0);
  }
}

TEST_CASE("a parameter built partitioned refuses other reads, naming itself") {
  manual_seed(1);
  PartitionedInit scope(2, 1, 0);
  auto model = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{std::make_shared<nn::Linear>(4, 6)});
  scope.close();
  Tensor weight = parameter_named(*model, "0.weight");
  CHECK_THROWS_WITH_AS(ops::add(weight, weight),
                       doctest::Contains("parameter 0.weight (module '0') lives as slices"),
                       std::logic_error);
  CHECK_THROWS_WITH_AS(zt::normal_(weight, 0.0, 1.0),
                       doctest::Contains("built inside PartitionedInit"), std::logic_error);
}

TEST_CASE("partitioned construction refuses nested scopes, late parameters and bad ranks") {
  CHECK_THROWS_WITH_AS(PartitionedInit(2, 2, 0), doctest::Contains("rank 2 of world size 2"),
                       std::invalid_argument);
  {
    PartitionedInit scope(2, 0, 0);
    CHECK_THROWS_WITH_AS(PartitionedInit(2, 1, 0), doctest::Contains("do not nest"),
                         std::logic_error);
  }
  struct Late : nn::Module {
    void add_late() { register_parameter("late", zeros({3})); }
  };
  PartitionedInit scope(2, 0, 0);
  auto parent = std::make_shared<nn::Sequential>();
  auto late = std::make_shared<Late>();
  parent->push_back(late);
  CHECK_THROWS_WITH_AS(late->add_late(), doctest::Contains("registered parameter 'late' after"),
                       std::logic_error);
}
