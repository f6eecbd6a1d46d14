// ParameterGatherer: how the parameters every rank computes with are brought up to date.
// With P_p, the groups a module reads (its own, and those of the tied and external parameters
// it reads: ModuleGroups of the plan) are all-gathered before its forward and its backward,
// with the next groups of the first step's order prefetched, and released after each; groups
// under the persistence threshold stay whole and are refreshed after each update. Without P_p
// but with P_os, each rank's updated owned slices are all-gathered after the update. Without
// either, every rank updated everything and nothing moves.
// Invariants: every gather is issued in the same order on every rank (the module order and the
// first step's traces are the same everywhere); a group is released only when no module whose
// forward is running reads it (a count per group), so a module reading a tied or external
// parameter keeps it gathered while it runs; a gather that the other ranks do not join within
// zero_optimization.stage3_gather_timeout ends the job with a message naming the module.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "dist/config.h"
#include "dist/zero/flat_group_buffers.h"
#include "dist/zero/parameter_swap.h"
#include "dist/zero/partition_plan.h"
#include "dist/zero/partitioning.h"
#include "nn/module.h"

namespace zt::dist {

class ParameterGatherer {
 public:
  // `groups` are the engine's; they and `data_parallel` outlive the gatherer.
  ParameterGatherer(ZeroPartitioning partitioning, const ZeroConfig& zero,
                    comm::Communicator& data_parallel, FlatGroupList& groups, DType model_dtype);
  ~ParameterGatherer();  // removes the module hooks and buffer describers it registered
  ParameterGatherer(const ParameterGatherer&) = delete;
  ParameterGatherer& operator=(const ParameterGatherer&) = delete;

  // P_p: gathers the groups each module reads (`module_groups`, from the plan) around its
  // forward and, through a hook on the module's output, before its backward, where
  // `before_group_backward(group)` runs right after the gather (the reducer points the
  // gradients into the group's buffer there).
  void register_module_hooks(nn::Module& model, const std::vector<ModuleGroups>& module_groups,
                             std::function<void(size_t)> before_group_backward);
  // Makes the group's full_params current (a persistent group: refreshed from the owned slices).
  void gather_group(size_t group_index);
  // Drops a partitioned group's full parameters (after waiting for a gather in flight), unless
  // a module whose forward is running reads them.
  void release_group(size_t group_index);
  void gather_all();
  void release_all();
  // After the first step, its module order drives prefetching.
  void stop_recording_traces() { recording_traces_ = false; }
  // After an update of the owned slices: brings every rank's parameters up to date.
  void publish_updated_parameters();
  // P_p: the most parameter elements gathered at once so far (prefetch included).
  int64_t peak_gathered_numel() const { return peak_gathered_numel_; }
  // offload_param "nvme": swapped slices are brought in for their gathers (null: none).
  void set_parameter_swap(ParameterSwap* swap) { parameter_swap_ = swap; }

 private:
  // The order groups were gathered in during the first step, and where the current step is in
  // it (a group read by two modules appears twice).
  struct GatherTrace {
    std::vector<size_t> order;
    size_t cursor = 0;
  };
  void enter_module(const std::string& label, const std::vector<size_t>& groups);
  void leave_module(const std::vector<size_t>& groups, const nn::TensorList& outputs);
  void gather_for_backward(const std::vector<size_t>& groups);
  void record_and_prefetch(GatherTrace& trace, size_t group_index);
  void start_gather(size_t group_index);
  void finish_gather(size_t group_index);
  void all_gather_owned_slices();
  void finish_a_swapped_gather();
  void name_groups(nn::Module& model, const std::vector<ModuleGroups>& module_groups);
  void trace_gather_finished(size_t group_index);

  ZeroPartitioning partitioning_;
  const ZeroConfig& zero_;
  comm::Communicator& data_parallel_;
  FlatGroupList& groups_;
  DType model_dtype_;
  std::function<void(size_t)> before_group_backward_;
  std::vector<std::pair<nn::Module*, std::vector<int64_t>>> module_hook_handles_;
  // Per group: how many running forwards read it, its owner's label and its readers' labels
  // (for messages). The labels of the modules whose forward is running, innermost last.
  std::vector<int> running_readers_;
  std::vector<std::string> owner_labels_;
  std::vector<std::vector<std::string>> reader_labels_;
  std::vector<const std::string*> running_modules_;  // each points into its module's hook
  bool recording_traces_ = true;
  GatherTrace forward_trace_, backward_trace_;
  // Parameter elements gathered (or being gathered) right now, and the most so far.
  int64_t live_gathered_numel_ = 0;
  int64_t peak_gathered_numel_ = 0;
  ParameterSwap* parameter_swap_ = nullptr;
  // The trace (observe/trace_recorder.h): when each group's gather in flight started (< 0:
  // not traced), whether it was a prefetch, and whether the next start is one.
  std::vector<double> gather_started_us_;
  std::vector<bool> gather_is_prefetch_;
  bool starting_prefetch_ = false;
};

}  // namespace zt::dist
