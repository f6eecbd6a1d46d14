// Optimizer parameter groups on one process: the GPT recipe's decay / no_decay split, how a
// group's hyperparameters are resolved (inherited, overridden, refused with the key named),
// how owned slices split into runs of one group, and the checkpoint's record of the groups.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

#include "core/factory.h"
#include "dist/param_groups.h"
#include "dist/zero/owned_runs.h"
#include "nn/nn.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::dist;
using zt::testing::parse;

namespace {

// Embedding (2-d), LayerNorm over two dims (a 2-d weight), Linear: only the Linear's weight
// decays in GPT recipes.
std::shared_ptr<nn::Module> small_gpt_like() {
  manual_seed(5);
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Embedding>(11, 8), std::make_shared<nn::LayerNorm>(Shape{2, 4}),
      std::make_shared<nn::Linear>(8, 3)});
}

Config adamw_config(const std::string& scheduler = "", double lr = 0.01) {
  return parse(R"({"train_batch_size": 8, "optimizer": {"type": "AdamW", "params": {"lr": )" +
               std::to_string(lr) + R"(, "weight_decay": 0.1}})" +
               (scheduler.empty() ? "" : ", " + scheduler) + "}");
}

std::set<std::string> names_in(const ResolvedParamGroup& group) {
  return {group.param_names.begin(), group.param_names.end()};
}

std::string resolve_error(const ParamGroupSpecs& specs, nn::Module& model,
                          const Config& config = adamw_config()) {
  try {
    resolve_param_groups(specs, model, config);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("weight_decay_groups decays only weights of 2+ dims outside embeddings and norms") {
  auto model = small_gpt_like();
  ParamGroupSpecs groups = weight_decay_groups(*model);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].name == "decay");
  CHECK(groups[0].options.empty());  // the optimizer block's weight_decay
  CHECK(groups[1].name == "no_decay");
  CHECK(groups[1].options == std::map<std::string, double>{{"weight_decay", 0.0}});
  ResolvedParamGroups resolved = resolve_param_groups(groups, *model, adamw_config());
  CHECK(names_in(resolved.groups[0]) == std::set<std::string>{"2.weight"});
  CHECK(names_in(resolved.groups[1]) ==
        std::set<std::string>{"0.weight", "1.weight", "1.bias", "2.bias"});
  CHECK(resolved.groups[0].weight_decay == 0.1);
  CHECK(resolved.groups[1].weight_decay == 0.0);
  CHECK(resolved.group_of_param("1.weight") == 1);
}

TEST_CASE("a group inherits the keys it leaves out; its lr override sets its schedule share") {
  auto model = small_gpt_like();
  ParamGroupSpecs groups = weight_decay_groups(*model);
  groups[1].options["lr"] = 0.0025;
  ResolvedParamGroups resolved = resolve_param_groups(groups, *model, adamw_config());
  CHECK(resolved.groups[0].lr == 0.01);
  CHECK(resolved.groups[0].lr_scale == 1.0);
  CHECK(resolved.groups[1].lr == 0.0025);
  CHECK(resolved.groups[1].lr_scale == 0.25);
  ResolvedParamGroups single = resolve_param_groups({}, *model, adamw_config());
  REQUIRE(single.groups.size() == 1);
  CHECK(single.groups[0].name == "default");
  CHECK(single.groups[0].param_names.size() == 5);
  CHECK(single.groups[0].weight_decay == 0.1);
}

TEST_CASE("a bad parameter group is refused with the group and the key or parameter named") {
  auto model = small_gpt_like();
  auto groups_with = [&](const std::map<std::string, double>& options) {
    ParamGroupSpecs groups = weight_decay_groups(*model);
    groups[1].options = options;
    return groups;
  };
  CHECK(resolve_error(groups_with({{"momentum", 0.9}}), *model) ==
        "parameter group \"no_decay\": unknown hyperparameter \"momentum\" (a group may set lr, "
        "weight_decay)");
  CHECK(resolve_error(groups_with({{"lr", -1.0}}), *model) ==
        "parameter group \"no_decay\": lr -1 is invalid: expected a finite number >= 0");
  CHECK(resolve_error(groups_with({{"weight_decay", INFINITY}}), *model) ==
        "parameter group \"no_decay\": weight_decay inf is invalid: expected a finite number >= 0");

  ParamGroupSpecs foreign = weight_decay_groups(*model);
  foreign[0].params.push_back(zeros({7, 2}));
  CHECK(resolve_error(foreign, *model) ==
        "parameter group \"decay\": its tensor 1 (shape [7, 2]) is not a parameter of the model");
  ParamGroupSpecs twice = weight_decay_groups(*model);
  twice[0].params.push_back(twice[1].params.front());
  CHECK(resolve_error(twice, *model) ==
        "parameter 0.weight is in groups \"decay\" and \"no_decay\"; a parameter belongs to one "
        "group");
  ParamGroupSpecs repeated = weight_decay_groups(*model);
  repeated[0].params.push_back(repeated[0].params.front());
  CHECK(resolve_error(repeated, *model) ==
        "parameter group \"decay\": parameter 2.weight is listed twice");
  ParamGroupSpecs missing = weight_decay_groups(*model);
  missing[1].params.pop_back();
  CHECK(resolve_error(missing, *model) ==
        "parameter 2.bias [3] is in no parameter group; every parameter of the model must be in "
        "one (the groups: \"decay\", \"no_decay\")");
  ParamGroupSpecs same_names = weight_decay_groups(*model);
  same_names[1].name = "decay";
  CHECK(resolve_error(same_names, *model) ==
        "parameter groups: two groups are named \"decay\"; names must differ");
  // A schedule scales each group's lr by its ratio to the block's lr, which must then be > 0.
  Config scheduled =
      adamw_config(R"("scheduler": {"type": "WarmupLR", "params": {"warmup_max_lr": 0.01}})", 0.0);
  CHECK(resolve_error(groups_with({{"lr", 0.001}}), *model, scheduled) ==
        "parameter group \"no_decay\": lr 0.001 cannot follow the WarmupLR schedule: a schedule "
        "scales each group's lr by its ratio to optimizer.params.lr, which is 0");
  CHECK(resolve_error(groups_with({{"lr", 0.001}}), *model, adamw_config("", 0.0)) == "(no error)");
}

TEST_CASE("owned slices split into runs of one group that tile the slice, padding included") {
  // a (6 elements, group 0), b (3, group 1), c (2, group 0), padded to 12.
  FlatGroup plan;
  plan.params = {{"a", Tensor(), 0, 6}, {"b", Tensor(), 6, 3}, {"c", Tensor(), 9, 2}};
  plan.numel = 11;
  plan.padded_numel = 12;
  auto group_of = [](const std::string& name) -> size_t { return name == "b" ? 1 : 0; };
  auto runs = [&](int64_t begin, int64_t numel) {
    std::vector<std::tuple<int64_t, int64_t, size_t>> result;
    for (const OwnedRun& run : owned_runs(plan, begin, numel, group_of))
      result.emplace_back(run.begin, run.numel, run.param_group);
    return result;
  };
  using Runs = std::vector<std::tuple<int64_t, int64_t, size_t>>;
  CHECK(runs(0, 12) == Runs{{0, 6, 0}, {6, 3, 1}, {9, 3, 0}});  // one rank: every element
  CHECK(runs(0, 6) == Runs{{0, 6, 0}});                         // two ranks
  CHECK(runs(6, 6) == Runs{{0, 3, 1}, {3, 3, 0}});
  CHECK(runs(3, 3) == Runs{{0, 3, 0}});  // four ranks
  CHECK(runs(6, 3) == Runs{{0, 3, 1}});
  CHECK(runs(9, 3) == Runs{{0, 3, 0}});
  CHECK(runs(5, 2) == Runs{{0, 1, 0}, {1, 1, 1}});
  CHECK(runs(11, 1) == Runs{{0, 1, 0}});  // padding only: the last parameter's group
}

TEST_CASE("a checkpoint's groups must match the engine's by name and membership") {
  auto model = small_gpt_like();
  ResolvedParamGroups grouped =
      resolve_param_groups(weight_decay_groups(*model), *model, adamw_config());
  ResolvedParamGroups single = resolve_param_groups({}, *model, adamw_config());
  nlohmann::json saved = param_groups_json(grouped);
  CHECK(saved[1]["weight_decay"] == 0.0);
  CHECK_NOTHROW(check_saved_param_groups(saved, grouped, "ckpt"));
  // A checkpoint from before groups were recorded held one group of every parameter.
  CHECK_NOTHROW(check_saved_param_groups(nullptr, single, "ckpt"));
  CHECK_THROWS_WITH_AS(check_saved_param_groups(nullptr, grouped, "ckpt"),
                       "ckpt: the checkpoint's parameter groups are [\"default\"], this engine's "
                       "[\"decay\", \"no_decay\"]: resume with the groups it was saved with",
                       std::runtime_error);
  saved[1]["params"].push_back("2.weight");
  CHECK_THROWS_WITH_AS(check_saved_param_groups(saved, grouped, "ckpt"),
                       "ckpt: parameter 2.weight is in the checkpoint's group \"no_decay\" but "
                       "not in this engine's",
                       std::runtime_error);
}
