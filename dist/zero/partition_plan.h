// The flat partition plan of ZeRO: parameters grouped into flat groups; each group's
// parameters lie end to end in one contiguous buffer, padded to a multiple of the world size N
// and cut into N equal slices; rank r owns slice r of every group. Everything partitioned
// (optimizer state with P_os, gradient slices with P_g, parameter shards with P_p) is "the
// owned slices of the plan".
//
// Two ways to group:
// - by bucket (without P_p): consecutive parameters, taken in reverse registration order (the
//   order backward produces their gradients), up to reduce_bucket_size elements a group, so a
//   group is also the unit of gradient reduction and its reduction can start as soon as its
//   last gradient is ready. DESIGN.md's "one group per dtype" would make that impossible
//   without copying into buckets, so the bucket is the group.
// - by module (with P_p): each module's own parameters, so gathering a module is one
//   all-gather of one group. Groups under the persistence threshold stay whole on every rank.
//   A parameter registered by several modules (a tied weight) lies in the group of the first
//   of them in module order; the others, and modules that declared it external
//   (nn::register_external_parameter), list that group among the groups they need.
// Every parameter is planned once, so it is partitioned, reduced and updated once.
// Invariant: the plan is a pure function of the model's parameter list, the sizes and N, so
// every rank computes the same plan without communicating.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/module.h"

namespace zt::dist {

struct PlannedParam {
  std::string name;  // dotted name in the model
  Tensor param;
  int64_t offset = 0;  // element offset in the group's buffer
  int64_t numel = 0;
};

struct FlatGroup {
  std::vector<PlannedParam> params;
  std::string module_name;   // by-module plans: the owning module ("" for the root)
  int64_t numel = 0;         // sum of the parameters' numels
  int64_t padded_numel = 0;  // numel rounded up to a multiple of world_size
  int world_size = 1;
  bool partitioned = true;  // false: kept whole on every rank (P_p persistence threshold)

  int64_t slice_numel() const { return padded_numel / world_size; }
  int64_t slice_begin(int rank) const { return int64_t(rank) * slice_numel(); }
};

// With P_p: the groups one module's forward and backward read, gathered around them: its own
// group first, then the groups holding the tied and external parameters it reads.
struct ModuleGroups {
  std::string module_name;
  std::vector<size_t> groups;  // indices into PartitionPlan::groups
};

struct PartitionPlan {
  std::vector<FlatGroup> groups;
  std::vector<ModuleGroups> module_groups;  // by-module plans: each module that reads a group
  int world_size = 1;
  int64_t total_numel() const;
};

// Without P_p. Parameters must be floating, of one dtype; bucket_numel >= 1.
PartitionPlan plan_by_bucket(const NamedTensors& params, int64_t bucket_numel, int world_size);

// With P_p: one group per module with parameters of its own; groups of at most
// persistence_threshold elements are not partitioned, as long as the groups kept whole hold at
// most model_persistence_threshold elements in all (later ones over it are partitioned).
// Throws std::invalid_argument naming the module when an external parameter it declared is not
// a parameter of `model`.
PartitionPlan plan_by_module(
    nn::Module& model, int world_size, int64_t persistence_threshold,
    int64_t model_persistence_threshold = std::numeric_limits<int64_t>::max());

}  // namespace zt::dist
