// Building flat partition plans (dist/zero/partition_plan.h).
#include "dist/zero/partition_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <stdexcept>

namespace zt::dist {

int64_t PartitionPlan::total_numel() const {
  int64_t total = 0;
  for (const FlatGroup& group : groups) total += group.numel;
  return total;
}

namespace {

void check_param(const std::string& name, const Tensor& param, DType dtype) {
  if (!is_floating(param.dtype())) {
    throw std::invalid_argument(fmt::format("partition plan: parameter {} is {}, not floating",
                                            name, dtype_name(param.dtype())));
  }
  if (param.dtype() != dtype) {
    throw std::invalid_argument(fmt::format(
        "partition plan: parameters mix dtypes ({} is {}, others {}); convert the model first",
        name, dtype_name(param.dtype()), dtype_name(dtype)));
  }
}

void close_group(FlatGroup& group, int world_size) {
  group.world_size = world_size;
  group.padded_numel = (group.numel + world_size - 1) / world_size * world_size;
  if (group.padded_numel == 0) group.padded_numel = world_size;  // keep slices non-empty
}

void add_param(FlatGroup& group, const std::string& name, const Tensor& param) {
  group.params.push_back({name, param, group.numel, param.numel()});
  group.numel += param.numel();
}

// Which group each planned parameter lies in, by identity (a tied parameter is one impl).
using GroupOfParameter = std::map<const TensorImpl*, size_t>;

// The groups `module` reads: those of its own parameters (its group, or an earlier module's
// for a tied one) and of its external parameters.
ModuleGroups groups_read_by(const std::string& module_name, const nn::Module& module,
                            const GroupOfParameter& group_of) {
  ModuleGroups reads{module_name, {}};
  auto add = [&reads](size_t group) {
    if (std::find(reads.groups.begin(), reads.groups.end(), group) == reads.groups.end())
      reads.groups.push_back(group);
  };
  for (auto& [name, param] : module.named_parameters(/*recurse=*/false))
    add(group_of.at(param.impl()));
  for (const Tensor& external : module.external_parameters()) {
    auto found = group_of.find(external.impl());
    if (found == group_of.end()) {
      throw std::invalid_argument(fmt::format(
          "partition plan: module '{}' ({}) declared an external parameter of shape {} that is "
          "not a parameter of the model (register_external_parameter takes a parameter another "
          "module of the same model registered)",
          module_name, module.type_name(), shape_str(external.sizes())));
    }
    add(found->second);
  }
  return reads;
}

}  // namespace

PartitionPlan plan_by_bucket(const NamedTensors& params, int64_t bucket_numel, int world_size) {
  if (world_size < 1) throw std::invalid_argument("partition plan: world_size must be >= 1");
  if (bucket_numel < 1) throw std::invalid_argument("partition plan: bucket size must be >= 1");
  PartitionPlan plan;
  plan.world_size = world_size;
  if (params.empty()) return plan;
  DType dtype = params.front().second.dtype();
  FlatGroup current;
  for (auto entry = params.rbegin(); entry != params.rend(); ++entry) {
    check_param(entry->first, entry->second, dtype);
    if (!current.params.empty() && current.numel + entry->second.numel() > bucket_numel) {
      close_group(current, world_size);
      plan.groups.push_back(std::move(current));
      current = FlatGroup{};
    }
    add_param(current, entry->first, entry->second);
  }
  close_group(current, world_size);
  plan.groups.push_back(std::move(current));
  return plan;
}

PartitionPlan plan_by_module(nn::Module& model, int world_size, int64_t persistence_threshold,
                             int64_t model_persistence_threshold) {
  if (world_size < 1) throw std::invalid_argument("partition plan: world_size must be >= 1");
  PartitionPlan plan;
  plan.world_size = world_size;
  std::optional<DType> dtype;
  GroupOfParameter group_of;
  int64_t kept_whole_numel = 0;
  auto modules = model.named_modules();
  for (auto& [module_name, module] : modules) {
    FlatGroup group;
    group.module_name = module_name;
    for (auto& [name, param] : module->named_parameters(/*recurse=*/false)) {
      if (group_of.contains(param.impl())) continue;  // tied: planned with an earlier module
      std::string full_name = module_name.empty() ? name : module_name + "." + name;
      if (!dtype) dtype = param.dtype();
      check_param(full_name, param, *dtype);
      add_param(group, full_name, param);
      group_of[param.impl()] = plan.groups.size();
    }
    if (group.params.empty()) continue;
    close_group(group, world_size);
    group.partitioned = group.numel > persistence_threshold ||
                        group.numel > model_persistence_threshold - kept_whole_numel;
    if (!group.partitioned) kept_whole_numel += group.numel;
    plan.groups.push_back(std::move(group));
  }
  // Second pass: an external parameter may belong to a module planned after its reader.
  for (auto& [module_name, module] : modules) {
    ModuleGroups reads = groups_read_by(module_name, *module, group_of);
    if (!reads.groups.empty()) plan.module_groups.push_back(std::move(reads));
  }
  return plan;
}

}  // namespace zt::dist
