// Partitioned construction, as DeepSpeed's deepspeed.zero.Init: a model built while a
// PartitionedInit is alive on this thread allocates only this rank's slice of each partitioned
// parameter group, with exactly the values the whole model would have, so a model larger than
// one rank's memory can be built and then trained by the ZeRO stage-3 engine, which adopts the
// slices as they are (no broadcast, no full buffer).
//
// How: the scope observes construction (nn/construction_observer.h). When a parent registers a
// child, the child's constructor has returned, so its own parameters are final and its group
// (the child's own parameters end to end, padded to a multiple of N, as plan_by_module lays it)
// is known: the scope keeps slice `rank` and frees the full values. The root's own group is cut
// when the scope closes. Peak memory is the slices plus one module's parameters whole.
// Every rank draws the same stream (a Generator's element i depends only on (seed, offset + i)),
// so each rank cuts its slice from values that agree without communicating them; the scope
// checks at its start that every rank's default generator state is the same.
// Invariant: a cut parameter's layout equals the engine's plan for the finished model; the
// engine checks it parameter by parameter and names any that differs.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "dist/config.h"
#include "nn/construction_observer.h"
#include "nn/module.h"

namespace zt::dist {

class PartitionedInit final : public nn::ConstructionObserver {
 public:
  // Over the data-parallel ranks, with the engine's config: its stage must be 3 and its
  // stage3_param_persistence_threshold decides which groups stay whole, as in the engine.
  // Collective: throws std::invalid_argument on every rank when the ranks' default generators
  // differ (call zt::manual_seed with one seed on every rank first).
  PartitionedInit(comm::Communicator& data_parallel, const Config& config);
  PartitionedInit(comm::Communicator& data_parallel, const ZeroConfig& zero);
  // One process playing rank `rank` of `world_size` (tools and tests); no generator check.
  PartitionedInit(int world_size, int rank, int64_t persistence_threshold);
  // Closes the scope if close() was not called; an error then leaves the roots' own
  // parameters whole (the engine still takes them, at the cost of their memory).
  ~PartitionedInit() override;
  PartitionedInit(const PartitionedInit&) = delete;
  PartitionedInit& operator=(const PartitionedInit&) = delete;

  // Cuts the own parameters of the modules no parent registered (the roots), gives the cut
  // parameters their dotted names and ends the scope. Throws what cutting throws.
  void close();

  int world_size() const { return world_size_; }
  int rank() const { return rank_; }
  int64_t groups_partitioned() const { return groups_partitioned_; }
  int64_t groups_kept_whole() const { return groups_kept_whole_; }

  void parameter_registered(nn::Module& module, const std::string& name,
                            const Tensor& parameter) override;
  void child_registered(nn::Module& parent, const std::string& name, nn::Module& child) override;
  void module_destroyed(const nn::Module& module) noexcept override;

 private:
  void open();
  // Cuts (or keeps whole) `module`'s own parameters, except those planned with an earlier
  // module (already cut or kept) and those `parent` registered too (they are in its group).
  void finish_module(nn::Module& module, const std::string& module_name, const nn::Module* parent);
  bool planned_already(const Tensor& parameter) const;

  int world_size_ = 1;
  int rank_ = 0;
  int64_t persistence_threshold_ = 0;
  // The groups kept whole stay within this many elements in all, as in plan_by_module.
  int64_t model_persistence_threshold_ = std::numeric_limits<int64_t>::max();
  int64_t kept_whole_numel_ = 0;
  bool slices_in_host_memory_ = false;  // offload_param: slices under MemoryTag::param_offload
  bool open_ = false;
  nn::ConstructionObserver* previous_ = nullptr;
  // Modules with own parameters not yet finished, in the order they registered their first.
  std::vector<nn::Module*> pending_;
  std::set<const nn::Module*> finished_;
  std::set<nn::Module*> parents_;         // modules that registered a child
  std::set<const nn::Module*> children_;  // modules registered into a parent
  // Parameters of groups kept whole (under the threshold): planned, so not planned again.
  std::map<const TensorImpl*, std::weak_ptr<TensorImpl>> kept_whole_;
  int64_t groups_partitioned_ = 0;
  int64_t groups_kept_whole_ = 0;
};

}  // namespace zt::dist
