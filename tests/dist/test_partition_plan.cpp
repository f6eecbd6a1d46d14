// The by-module partition plan of stage 3 with tied and external parameters (the model of
// tests/nn/tied_model.h): each parameter planned once, each module listing the groups it reads;
// and the messages of stage-3 gathers gone wrong.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "dist/zero/partition_plan.h"
#include "dist/zero/stage3_diagnostics.h"
#include "tests/nn/tied_model.h"

using namespace zt;
using namespace zt::dist;
using namespace zt::testing;

namespace {

std::vector<std::string> param_names(const FlatGroup& group) {
  std::vector<std::string> names;
  for (const PlannedParam& entry : group.params) names.push_back(entry.name);
  return names;
}

// "module: group, group" per module that reads a group.
std::vector<std::string> reads_of(const PartitionPlan& plan) {
  std::vector<std::string> lines;
  for (const ModuleGroups& reads : plan.module_groups) {
    std::string line = "'" + reads.module_name + "':";
    for (size_t g : reads.groups) line += " " + std::to_string(g);
    lines.push_back(line);
  }
  return lines;
}

}  // namespace

TEST_CASE("stage 3 plans a weight two modules registered once, in the first module's group") {
  auto model = make_tied_lm(Tying::shared_parameter);
  PartitionPlan plan = plan_by_module(*model, 4, 0);
  REQUIRE(plan.groups.size() == 2);
  CHECK(param_names(plan.groups[0]) == std::vector<std::string>{"wte.weight"});
  CHECK(param_names(plan.groups[1]) == std::vector<std::string>{"hidden.weight", "hidden.bias"});
  CHECK(plan.total_numel() == model->num_parameters());
  CHECK(reads_of(plan) == std::vector<std::string>{"'wte': 0", "'hidden': 1", "'head': 0"});
}

TEST_CASE("stage 3 plans a module's declared external parameter as a group it reads") {
  PartitionPlan declared = plan_by_module(*make_tied_lm(Tying::external_declared), 2, 0);
  CHECK(reads_of(declared) == std::vector<std::string>{"'': 0", "'wte': 0", "'hidden': 1"});
  PartitionPlan undeclared = plan_by_module(*make_tied_lm(Tying::external_undeclared), 2, 0);
  CHECK(reads_of(undeclared) == std::vector<std::string>{"'wte': 0", "'hidden': 1"});
}

TEST_CASE("an external parameter that is not the model's is refused, naming the module") {
  auto model = make_tied_lm(Tying::shared_parameter);
  auto stranger = make_tied_lm(Tying::shared_parameter);
  nn::register_external_parameter(*model->hidden, stranger->wte->weight);
  try {
    plan_by_module(*model, 2, 0);
    FAIL("no error");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()) ==
          "partition plan: module 'hidden' (Linear) declared an external parameter of shape "
          "[10, 8] that is not a parameter of the model (register_external_parameter takes a "
          "parameter another module of the same model registered)");
  }
}

TEST_CASE("stage-3 messages name the other ranks as ranges, the module and its parameters") {
  CHECK(other_ranks_text(0, 4) == "1..3");
  CHECK(other_ranks_text(2, 4) == "0..1, 3");
  CHECK(other_ranks_text(1, 2) == "0");
  CHECK(other_ranks_text(3, 8) == "0..2, 4..7");
  CHECK(module_label("", "TiedLM") == "the root module (TiedLM)");
  CHECK(module_label("blocks.0.attn", "Linear") == "module 'blocks.0.attn' (Linear)");

  FlatGroup group;
  group.module_name = "block";
  for (const char* name : {"block.q", "block.k", "block.v", "block.o", "block.bias"})
    group.params.push_back({name, Tensor(), 0, 1});
  CHECK(describe_unjoined_gather("module 'block' (Block)", group, 2.0, 0, 4)
            .starts_with("stage-3 gather of module 'block' (Block) waited 2 s for ranks 1..3 of "
                         "its data-parallel "
                         "group, and not all of them joined (parameters block.q, block.k, block.v, "
                         "2 more): "));
}
