// ParameterGatherer: how the parameters every rank computes with are brought up to date.
// With P_p, a module's group is all-gathered before its forward and its backward and released
// after each, with the next groups of the first step's module order prefetched; groups under
// the persistence threshold stay whole and are refreshed after each update. Without P_p but
// with P_os, each rank's updated owned slices are all-gathered after the update. Without
// either, every rank updated everything and nothing moves.
// Invariant: every gather is issued in the same order on every rank (the module order and the
// first step's traces are the same everywhere).
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "dist/config.h"
#include "dist/zero/flat_group_buffers.h"
#include "dist/zero/partitioning.h"
#include "nn/module.h"

namespace zt::dist {

class ParameterGatherer {
 public:
  // `groups` are the engine's; they and `data_parallel` outlive the gatherer.
  ParameterGatherer(ZeroPartitioning partitioning, const ZeroConfig& zero,
                    comm::Communicator& data_parallel, FlatGroupList& groups, DType model_dtype);
  ~ParameterGatherer();  // removes the module hooks it registered
  ParameterGatherer(const ParameterGatherer&) = delete;
  ParameterGatherer& operator=(const ParameterGatherer&) = delete;

  // P_p: gathers each partitioned module's group around its forward and, through a hook on the
  // module's output, before its backward, where `before_group_backward(group)` runs right after
  // the gather (the reducer points the gradients into the group's buffer there).
  void register_module_hooks(nn::Module& model, std::function<void(size_t)> before_group_backward);
  // Makes the group's full_params current (a persistent group: refreshed from the owned slices).
  void gather_group(size_t group_index);
  // Drops a partitioned group's full parameters (after waiting for a gather in flight).
  void release_group(size_t group_index);
  void gather_all();
  void release_all();
  // After the first step, its module order drives prefetching.
  void stop_recording_traces() { recording_traces_ = false; }
  // After an update of the owned slices: brings every rank's parameters up to date.
  void publish_updated_parameters();
  // P_p: the most parameter elements gathered at once so far (prefetch included).
  int64_t peak_gathered_numel() const { return peak_gathered_numel_; }

 private:
  void start_gather(size_t group_index);
  void prefetch_after(const std::vector<size_t>& trace, size_t group_index);
  void all_gather_owned_slices();

  ZeroPartitioning partitioning_;
  const ZeroConfig& zero_;
  comm::Communicator& data_parallel_;
  FlatGroupList& groups_;
  DType model_dtype_;
  std::vector<std::pair<nn::Module*, std::vector<int64_t>>> module_hook_handles_;
  // The order groups were gathered in during the first step, forward and backward, and how
  // many parameter elements are gathered (or being gathered) right now.
  bool recording_traces_ = true;
  std::vector<size_t> forward_trace_, backward_trace_;
  int64_t live_gathered_numel_ = 0;
  int64_t peak_gathered_numel_ = 0;
};

}  // namespace zt::dist
