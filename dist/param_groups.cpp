// Resolving, applying and recording optimizer parameter groups (dist/param_groups.h).
#include "dist/param_groups.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

namespace zt::dist {
namespace {

const std::vector<std::string> kGroupKeys = {"lr", "weight_decay"};

// The hyperparameter `key` of `spec`, or `inherited` when the group leaves it out; a value that
// is negative or not finite is an error naming the group and the key.
double group_value(const ParamGroupSpec& spec, const std::string& group_name,
                   const std::string& key, double inherited) {
  auto found = spec.options.find(key);
  if (found == spec.options.end()) return inherited;
  double value = found->second;
  if (!std::isfinite(value) || value < 0.0) {
    throw std::invalid_argument(
        fmt::format("parameter group \"{}\": {} {} is invalid: expected a finite number >= 0",
                    group_name, key, value));
  }
  return value;
}

void check_group_keys(const ParamGroupSpec& spec, const std::string& group_name) {
  for (const auto& [key, value] : spec.options) {
    if (std::find(kGroupKeys.begin(), kGroupKeys.end(), key) != kGroupKeys.end()) continue;
    throw std::invalid_argument(
        fmt::format("parameter group \"{}\": unknown hyperparameter \"{}\" (a group may set {})",
                    group_name, key, fmt::join(kGroupKeys, ", ")));
  }
}

// The group's lr relative to the block's, for schedules that set the block's rate.
double lr_scale_of(double group_lr, const Config& config, const std::string& group_name) {
  double base = config.optimizer.lr;
  if (group_lr == base) return 1.0;
  if (base > 0.0) return group_lr / base;
  if (!config.scheduler.present) return 1.0;  // nothing will rescale it
  throw std::invalid_argument(fmt::format(
      "parameter group \"{}\": lr {} cannot follow the {} schedule: a schedule scales each "
      "group's lr by its ratio to optimizer.params.lr, which is 0",
      group_name, group_lr, config.scheduler.type));
}

// The model's name of each parameter tensor (a tensor registered twice keeps its first name).
std::map<const TensorImpl*, std::string> names_by_tensor(const NamedTensors& params) {
  std::map<const TensorImpl*, std::string> names;
  for (const auto& [name, param] : params) names.emplace(param.impl(), name);
  return names;
}

ResolvedParamGroups one_group_of_everything(const NamedTensors& params, const Config& config) {
  ResolvedParamGroups resolved;
  resolved.groups.push_back({.name = "default",
                             .lr = config.optimizer.lr,
                             .weight_decay = config.optimizer.weight_decay,
                             .lr_scale = 1.0});
  for (const auto& [name, param] : params) {
    resolved.groups.front().param_names.push_back(name);
    resolved.group_of[name] = 0;
  }
  return resolved;
}

}  // namespace

size_t ResolvedParamGroups::group_of_param(const std::string& name) const {
  auto found = group_of.find(name);
  if (found == group_of.end())
    throw std::logic_error("parameter groups: no group for parameter " + name);
  return found->second;
}

ResolvedParamGroups resolve_param_groups(const ParamGroupSpecs& specs, const nn::Module& model,
                                         const Config& config) {
  NamedTensors params = model.named_parameters();
  if (specs.empty()) return one_group_of_everything(params, config);
  std::map<const TensorImpl*, std::string> names = names_by_tensor(params);
  std::map<const TensorImpl*, size_t> group_of_tensor;
  std::set<std::string> group_names;
  ResolvedParamGroups resolved;
  for (size_t g = 0; g < specs.size(); ++g) {
    const ParamGroupSpec& spec = specs[g];
    std::string name = spec.name.empty() ? fmt::format("group {}", g) : spec.name;
    if (!group_names.insert(name).second) {
      throw std::invalid_argument(
          fmt::format("parameter groups: two groups are named \"{}\"; names must differ", name));
    }
    check_group_keys(spec, name);
    ResolvedParamGroup group{.name = name};
    group.lr = group_value(spec, name, "lr", config.optimizer.lr);
    group.weight_decay = group_value(spec, name, "weight_decay", config.optimizer.weight_decay);
    group.lr_scale = lr_scale_of(group.lr, config, name);
    for (size_t p = 0; p < spec.params.size(); ++p) {
      const Tensor& param = spec.params[p];
      auto found = param.defined() ? names.find(param.impl()) : names.end();
      if (found == names.end()) {
        throw std::invalid_argument(fmt::format(
            "parameter group \"{}\": its tensor {} ({}) is not a parameter of the model", name, p,
            param.defined() ? "shape " + shape_str(param.sizes()) : "undefined"));
      }
      auto [existing, inserted] = group_of_tensor.emplace(param.impl(), g);
      if (inserted) continue;
      if (existing->second == g) {
        throw std::invalid_argument(fmt::format(
            "parameter group \"{}\": parameter {} is listed twice", name, found->second));
      }
      throw std::invalid_argument(
          fmt::format("parameter {} is in groups \"{}\" and \"{}\"; a parameter belongs to one "
                      "group",
                      found->second, resolved.groups[existing->second].name, name));
    }
    resolved.groups.push_back(std::move(group));
  }
  for (const auto& [name, param] : params) {
    auto found = group_of_tensor.find(param.impl());
    if (found == group_of_tensor.end()) {
      std::vector<std::string> given;
      for (const ResolvedParamGroup& group : resolved.groups) given.push_back(group.name);
      throw std::invalid_argument(fmt::format(
          "parameter {} {} is in no parameter group; every parameter of the model must be in "
          "one (the groups: \"{}\")",
          name, shape_str(param.sizes()), fmt::join(given, "\", \"")));
    }
    resolved.groups[found->second].param_names.push_back(name);
    resolved.group_of[name] = found->second;
  }
  return resolved;
}

ParamGroupSpecs weight_decay_groups(nn::Module& model) {
  ParamGroupSpec decay{.name = "decay"};
  ParamGroupSpec no_decay{.name = "no_decay", .options = {{"weight_decay", 0.0}}};
  // A tensor shared by two modules (tied weights) goes where its first module puts it.
  std::set<const TensorImpl*> placed;
  for (auto& [module_name, module] : model.named_modules()) {
    std::string type = module->type_name();
    bool never_decays = type == "Embedding" || type.find("Norm") != std::string::npos;
    for (auto& [name, param] : module->named_parameters(/*recurse=*/false)) {
      if (!placed.insert(param.impl()).second) continue;
      bool is_bias = name == "bias" || name.ends_with("_bias");
      bool decays = !never_decays && !is_bias && param.dim() >= 2;
      (decays ? decay : no_decay).params.push_back(param);
    }
  }
  return {decay, no_decay};
}

void apply_param_groups(optim::Optimizer& optimizer, const ResolvedParamGroups& resolved) {
  std::vector<optim::ParamGroup>& groups = optimizer.param_groups();
  if (groups.size() != resolved.groups.size()) {
    throw std::logic_error(fmt::format("parameter groups: the optimizer has {} groups, not {}",
                                       groups.size(), resolved.groups.size()));
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    groups[g].lr = resolved.groups[g].lr;
    groups[g].weight_decay = resolved.groups[g].weight_decay;
    groups[g].lr_scale = resolved.groups[g].lr_scale;
  }
}

nlohmann::json param_groups_json(const ResolvedParamGroups& resolved) {
  nlohmann::json groups = nlohmann::json::array();
  for (const ResolvedParamGroup& group : resolved.groups) {
    groups.push_back({{"name", group.name},
                      {"lr", group.lr},
                      {"weight_decay", group.weight_decay},
                      {"lr_scale", group.lr_scale},
                      {"params", group.param_names}});
  }
  return groups;
}

void check_saved_param_groups(const nlohmann::json& saved, const ResolvedParamGroups& resolved,
                              const std::string& where) {
  std::vector<std::pair<std::string, std::set<std::string>>> checkpoint_groups;
  if (saved.is_null()) {
    std::set<std::string> everything;
    for (const auto& [name, group] : resolved.group_of) everything.insert(name);
    checkpoint_groups.emplace_back("default", everything);
  } else {
    try {
      for (const nlohmann::json& group : saved) {
        std::vector<std::string> members = group.at("params").get<std::vector<std::string>>();
        checkpoint_groups.emplace_back(group.at("name").get<std::string>(),
                                       std::set<std::string>(members.begin(), members.end()));
      }
    } catch (const nlohmann::json::exception& error) {
      throw std::runtime_error(fmt::format("{}: param_groups: {}", where, error.what()));
    }
  }
  auto names_of = [](const auto& groups) {
    std::vector<std::string> names;
    for (const auto& group : groups) names.push_back(group.name);
    return names;
  };
  std::vector<std::string> checkpoint_names;
  for (const auto& [name, members] : checkpoint_groups) checkpoint_names.push_back(name);
  if (checkpoint_names != names_of(resolved.groups)) {
    throw std::runtime_error(fmt::format(
        "{}: the checkpoint's parameter groups are [\"{}\"], this engine's [\"{}\"]: resume with "
        "the groups it was saved with",
        where, fmt::join(checkpoint_names, "\", \""),
        fmt::join(names_of(resolved.groups), "\", \"")));
  }
  for (size_t g = 0; g < checkpoint_groups.size(); ++g) {
    const ResolvedParamGroup& group = resolved.groups[g];
    const std::set<std::string>& saved_members = checkpoint_groups[g].second;
    std::set<std::string> members(group.param_names.begin(), group.param_names.end());
    if (saved_members == members) continue;
    for (const std::string& name : group.param_names) {
      if (saved_members.count(name) == 0) {
        throw std::runtime_error(
            fmt::format("{}: parameter {} is in group \"{}\" here but not in the checkpoint's",
                        where, name, group.name));
      }
    }
    for (const std::string& name : saved_members) {
      if (members.count(name) == 0) {
        throw std::runtime_error(fmt::format(
            "{}: parameter {} is in the checkpoint's group \"{}\" but not in this engine's", where,
            name, group.name));
      }
    }
  }
}

}  // namespace zt::dist
