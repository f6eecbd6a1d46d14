// Optimizer parameter groups for the engine, as torch.optim's param_groups (what DeepSpeed takes
// as model_parameters): each group lists some of the model's parameters and overrides some of
// the optimizer block's hyperparameters; a key a group leaves out takes the block's value.
// Invariant: once resolved, every parameter of the model is in exactly one group, found by its
// name, so the groups survive the engine moving and converting the parameters.
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dist/config.h"
#include "nn/module.h"
#include "optim/optimizer.h"

namespace zt::dist {

// One group as the caller gives it.
struct ParamGroupSpec {
  std::string name;            // names the group in errors, logs and checkpoints ("" : "group <i>")
  std::vector<Tensor> params;  // the model's own parameter tensors
  // Overrides of the optimizer block: "lr" and "weight_decay". Any other key is an error.
  std::map<std::string, double> options;
};
using ParamGroupSpecs = std::vector<ParamGroupSpec>;

// A group with every hyperparameter decided.
struct ResolvedParamGroup {
  std::string name;
  double lr = 0.0;
  double weight_decay = 0.0;
  // lr relative to the optimizer block's: a schedule gives the group its rate times this.
  double lr_scale = 1.0;
  std::vector<std::string> param_names;  // in the model's order
};

struct ResolvedParamGroups {
  std::vector<ResolvedParamGroup> groups;
  std::map<std::string, size_t> group_of;  // parameter name -> index in groups
  // The group of parameter `name`; throws std::logic_error for a name the model lacks.
  size_t group_of_param(const std::string& name) const;
};

// `specs` checked against `model` and config.optimizer: no specs make one group "default" of
// every parameter with the block's values. Throws std::invalid_argument naming the group and
// the key or parameter at fault: an unknown or invalid hyperparameter, a tensor that is not a
// parameter of the model, a parameter in two groups or in none, two groups of one name, an lr
// override that cannot follow the schedule (the block's lr is 0).
ResolvedParamGroups resolve_param_groups(const ParamGroupSpecs& specs, const nn::Module& model,
                                         const Config& config);

// The two groups of GPT recipes: "decay" (the block's weight_decay) holds the weights of two
// or more dimensions of every module but embeddings and norms; "no_decay" (weight_decay 0)
// holds the rest: biases, every parameter of fewer than two dimensions, and the parameters of
// modules whose type is Embedding or whose type name contains "Norm" (LayerNorm, RMSNorm, ...).
ParamGroupSpecs weight_decay_groups(nn::Module& model);

// Gives the optimizer's groups (indexed like `resolved.groups`) their lr, weight_decay and
// lr_scale.
void apply_param_groups(optim::Optimizer& optimizer, const ResolvedParamGroups& resolved);

// The groups as a checkpoint records them: names, members and hyperparameters.
nlohmann::json param_groups_json(const ResolvedParamGroups& resolved);
// Throws std::runtime_error, prefixed by `where`, naming the first difference when `saved` (a
// checkpoint's record; null for one saved before groups were recorded, which had one group of
// every parameter) does not hold the same groups with the same parameters as `resolved`.
void check_saved_param_groups(const nlohmann::json& saved, const ResolvedParamGroups& resolved,
                              const std::string& where);

}  // namespace zt::dist
