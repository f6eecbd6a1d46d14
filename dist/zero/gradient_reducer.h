// GradientReducer: from autograd's "gradient ready" events to each rank's reduced gradients.
// A group is reduced when its last gradient of a backward is ready: without P_os by all-reduce
// of the whole group (every rank keeps every gradient), with P_os by reduce-scatter into the
// owned gradient slice. Without P_g only the accumulation boundary's backward reduces (the full
// gradient buffers accumulate micro-batches in place); with P_g every backward reduces, the
// owned slice accumulates, and full gradient buffers live only while a group is collected.
// offload_optimizer: with P_g the owned slice is in host memory, so every reduced slice crosses
// to the host as its reduction is absorbed and accumulates there; at the accumulation boundary
// the owned slice is copied into the host fp32 gradient buffer (master_grads) at once.
// Invariant: every rank issues the same reductions in the same order: groups in the order
// backward completes them (the same everywhere), then the unreached ones in plan order.
#pragma once

#include <cstddef>
#include <string>

#include "comm/communicator.h"
#include "dist/config.h"
#include "dist/step_timers.h"
#include "dist/zero/flat_group_buffers.h"
#include "dist/zero/parameter_gatherer.h"
#include "dist/zero/partitioning.h"

namespace zt::dist {

class GradientReducer {
 public:
  // Registers a grad-ready hook on every planned parameter. Everything passed in outlives the
  // reducer; `gatherer` releases a group's parameters once its backward is reduced (P_p), and
  // the seconds spent reducing are added to `timers.reduce`.
  GradientReducer(ZeroPartitioning partitioning, const Config& config,
                  comm::Communicator& data_parallel, FlatGroupList& groups, DType model_dtype,
                  Device device, ParameterGatherer& gatherer, StepTimers& timers);
  ~GradientReducer();  // removes the grad-ready hooks
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Around one engine backward; `boundary`: it ends an accumulation window. end_backward
  // reduces what backward did not reach and waits for every reduction (when any is due).
  void begin_backward(bool boundary);
  void end_backward();
  // Without P_os: the gradients of the following backwards stay on their rank, unreduced (a
  // compressed-communication optimizer exchanges its momentum instead: optim/onebit_optimizer.h).
  void keep_gradients_local(bool local) { local_gradients_ = local; }
  // P_p: points the group's parameters' .grad at a fresh zeroed group buffer, so autograd
  // accumulates into it directly instead of into a buffer of its own that is then copied.
  void collect_gradients_in_place(size_t group_index);
  // After an update: the gradients that accumulate across micro-batches start from zero.
  void zero_gradients();
  // The first parameter whose gradient a backward the engine did not start produced (a
  // loss.backward() on the model), or "" when none did. Such gradients are never reduced.
  const std::string& gradient_outside_engine_backward() const { return outside_backward_param_; }
  // Pipeline parallelism: such gradients are taken in on purpose (Engine::
  // backward_accumulated_gradients), so the record of them is dropped.
  void forget_gradients_outside_engine_backward() { outside_backward_param_.clear(); }

 private:
  void on_gradient_ready(size_t group_index, size_t param_index);
  void move_gradient_into_group(FlatGroupBuffers& group, PlannedParam& entry);
  void reduce_group(size_t group_index);
  void absorb_reduction(size_t group_index);
  Tensor zeroed_full_grads(const FlatGroupBuffers& group) const;

  ZeroPartitioning partitioning_;
  const Config& config_;
  comm::Communicator& data_parallel_;
  FlatGroupList& groups_;
  DType model_dtype_;
  Device device_;
  ParameterGatherer& gatherer_;
  StepTimers& timers_;
  bool in_backward_ = false;      // inside a backward the engine started
  bool boundary_ = false;         // that backward ends an accumulation window
  bool local_gradients_ = false;  // keep_gradients_local
  std::string outside_backward_param_;
};

}  // namespace zt::dist
