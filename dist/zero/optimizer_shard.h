// OptimizerShard: the optimizer over this rank's owned slices. With P_os a rank owns slice r of
// every group; without it, it owns (and updates) every element. Each owned slice is cut into
// runs of one parameter group (dist/zero/owned_runs.h): the optimizer's group g holds the runs
// of group g, so every element is updated with its own group's hyperparameters. Under mixed
// precision the optimizer steps an fp32 master copy of each owned slice (optimizer state) and
// rounds it back into the 16-bit parameters. The overflow check and the global gradient norm read
// only the owned gradients, combined across ranks in rank order, so every rank takes the same
// decision and the norm is bitwise the same with and without P_os.
// offload_optimizer (ZeRO-Offload): the fp32 master of every owned slice, its gradient and the
// optimizer's moments live in host memory (the master exists in fp32 training too, as in
// DeepSpeed); the gradient reducer streams each reduced slice into the host gradient, the
// update runs on the host sub-group by sub-group (sub_group_size elements of the owned slices
// laid end to end) and each sub-group's result is copied back into the device's owned_params.
// With device "nvme" the master and the moments live in swap files instead
// (dist/zero/host_optimizer_swap.h): the optimizer's run tensors are rebound to the swap
// buffers holding their sub-group only while it is updated, and are otherwise parked on an
// empty buffer that nothing reads.
// The update rule and its arithmetic are the same, so the weights are bitwise those of the
// run without offload.
#pragma once

#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "dist/config.h"
#include "dist/param_groups.h"
#include "dist/zero/flat_group_buffers.h"
#include "dist/zero/host_optimizer_swap.h"
#include "dist/zero/owned_runs.h"
#include "dist/zero/parameter_swap.h"
#include "dist/zero/partitioning.h"
#include "optim/optimizer.h"

namespace zt::dist {

class OptimizerShard {
 public:
  // Makes the master weights (mixed precision) and the configured optimizer over the runs of
  // the owned slices, one optimizer group per parameter group of `param_groups`. `groups` and
  // `control` (the host communicator for scalars, ranked as the data-parallel group) outlive
  // the shard. `data_parallel_host` is the data-parallel group's host-memory communicator, whose
  // counters are the engine's traffic: the compressed-communication optimizers exchange their
  // momenta there.
  OptimizerShard(ZeroPartitioning partitioning, const Config& config, FlatGroupList& groups,
                 const ResolvedParamGroups& param_groups, Device device, bool mixed_precision,
                 comm::Communicator& control, comm::Communicator& data_parallel_host);

  optim::Optimizer& optimizer() { return *optimizer_; }
  const optim::Optimizer& optimizer() const { return *optimizer_; }

  // Mixed precision: the optimizer's fp32 gradients, unscaled by `loss_scale`, from the reduced
  // 16-bit ones. They live only for the update (DeepSpeed allocates its fp32 gradient
  // partition the same way), until drop_master_gradients.
  void make_master_gradients(double loss_scale);
  void drop_master_gradients();
  // Sums of squares of what this rank updates, in one fused pass (one kernel launch on a GPU):
  // without P_os one per group and rank slice (so that the norm is combined exactly as with
  // it), else one per group's owned slice. A non-finite sum is an inf or NaN gradient.
  std::vector<double> local_square_sums();
  // Whether any rank's sums hold an inf or a NaN. Collective over `control`.
  bool gradients_overflowed(const std::vector<double>& square_sums);
  // The global L2 norm from every rank's sums. Collective over `control` with P_os.
  double global_grad_norm(const std::vector<double>& square_sums);
  // Model parallelism: the norm and the overflow flag also combine over `control` (the host
  // communicator for scalars of the tensor group, or of the pipeline group), each added once.
  void combine_over(comm::Communicator& control);
  // The elements left out of the norm's sums on this rank (per group: [offset, offset + numel)
  // of its flat buffer, sorted, disjoint), so that a parameter several ranks hold alike counts
  // once: on a tensor rank other than 0 those every tensor rank holds alike (a norm, a
  // row-parallel bias), on a pipeline stage a tied copy that another stage counts.
  void exclude_from_norm(std::vector<std::vector<std::pair<int64_t, int64_t>>> ranges);
  // Whether the optimizer wants the next backward's gradients unreduced (the compressed-
  // communication optimizers after their warm-up: dist/zero/optimizer_shard_onebit.cpp).
  bool gradients_stay_local() const;
  // Clips by `grad_norm` when gradient_clipping asks for it, steps the optimizer and, under
  // mixed precision, rounds the masters into owned_params.
  void update(double grad_norm);

  // The optimizer state of flat group `group`'s update slice (update_params()' shape): its
  // runs' states laid end to end, with the step count they share. And its replacement, cut
  // back into the runs.
  optim::ParamState slice_state(size_t group) const;
  void set_slice_state(size_t group, const optim::ParamState& state);
  // The fp32 values the optimizer updates for flat group `group` (update_params(), or read
  // from the swap files), for checkpoints; and their replacement.
  Tensor master_slice(size_t group) const;
  void set_master_slice(size_t group, const Tensor& values);
  // Bytes of optimizer state in swap files (0 unless offloaded to NVMe), and their I/O.
  int64_t nvme_bytes() const;
  const OptimizerStateSwap* swap() const { return swap_.get(); }
  // offload_param "nvme": the update brings swapped parameter slices in and writes them back.
  void set_parameter_swap(ParameterSwap* swap) { parameter_swap_ = swap; }

 private:
  // Where a run of an owned slice sits in the optimizer: group and index of its tensor, and
  // the sub-group whose step updates it.
  struct RunPlace {
    OwnedRun run;
    size_t index = 0;
    size_t sub_group = 0;
  };
  // LAMB: names each run's parameters for the trust ratio's norms and, with P_os, sums every
  // rank's partial squares (dist/zero/optimizer_shard_lamb.cpp). Nothing for other optimizers.
  void attach_lamb_norms();
  // The configured optimizer over the runs; the compressed-communication ones get the
  // data-parallel communicator and run at stage 0 only, as in DeepSpeed.
  std::unique_ptr<optim::Optimizer> make_shard_optimizer(std::vector<optim::ParamGroup> groups);
  void make_offloaded_master(FlatGroupBuffers& group);
  // P_g with offload: the owned gradient slice accumulates in host memory (grad_offload), so
  // no gradient stays on the device between steps.
  void offload_owned_gradients(FlatGroupBuffers& group);
  void update_offloaded();
  // Mixed precision with the owned 16-bit parameters in host memory: each sub-group's Adam
  // writes the rounded parameter in the same pass as the fp32 master (no cast pass after).
  bool one_pass_update_applies() const;
  void update_sub_group_one_pass(size_t sub_group);
  void update_swapped();
  void swap_for_each_update(int64_t sub_group_size);
  void make_swap(const std::vector<Tensor>& masters);
  // NVMe: the run's Adam state made afresh at `step` (zeros) and parked with its parameter.
  void reset_swapped_run_state(const RunPlace& place, int64_t step);
  void park(const RunPlace& place);
  // The device (or host) owned parameters of group g to write run `place`'s new values into,
  // and the end of that write (the slice goes back to its swap file after its last run).
  Tensor owned_run_for_update(size_t g, const RunPlace& place);
  void finish_run_update(size_t g);
  void scale_update_gradients(double factor);
  void copy_master_to_parameters();
  // Points each run's gradient at its elements of the group's update_grads() (or drops it).
  void attach_run_gradients(size_t group, bool attach);
  optim::ParamGroup& run_group(const RunPlace& place) {
    return optimizer_->param_groups()[place.run.param_group];
  }

  ZeroPartitioning partitioning_;
  const Config& config_;
  FlatGroupList& groups_;
  Device device_;
  bool mixed_precision_;
  bool offload_;  // offload_optimizer: master, gradient and moments in host memory
  size_t sub_group_count_ = 0;
  comm::Communicator& control_;
  comm::Communicator& data_parallel_host_;
  std::vector<comm::Communicator*> model_parallel_controls_;                    // tensor, pipeline
  std::vector<std::vector<std::pair<int64_t, int64_t>>> norm_excluded_ranges_;  // per group
  // The sums of squares of `piece` (at flat offset `base` of group `g`) without the excluded
  // ranges: the pieces to sum, appended to `parts`.
  void append_counted_parts(size_t g, const Tensor& piece, int64_t base,
                            std::vector<Tensor>& parts) const;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::vector<std::vector<RunPlace>> runs_;   // per flat group
  std::unique_ptr<OptimizerStateSwap> swap_;  // offload_optimizer "nvme"
  Storage parked_;                            // NVMe: the empty buffer idle run tensors view
  ParameterSwap* parameter_swap_ = nullptr;
  std::vector<size_t> runs_left_;  // per group, during an update with parameter_swap_
};

}  // namespace zt::dist
