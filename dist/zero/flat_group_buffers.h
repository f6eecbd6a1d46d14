// The buffers of one flat group of the partition plan, and how they are built from the model's
// parameters. Which buffers exist follows the three switches (dist/zero/partitioning.h); the
// model's parameters become views of full_params, so they work unchanged while it is there.
// Invariant: every buffer of a group has the model's dtype and lives on the engine's device,
// except the fp32 master pair (mixed precision).
#pragma once

#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "core/ops/view.h"
#include "core/tensor.h"
#include "dist/zero/partition_plan.h"
#include "dist/zero/partitioning.h"

namespace zt::dist {

// A 1-d view of `length` elements of a flat buffer starting at `offset`.
inline Tensor flat_range(const Tensor& flat, int64_t offset, int64_t length) {
  return ops::narrow(flat, 0, offset, length);
}

// Points `param`'s impl at `length` elements of `storage` from `offset`, keeping its shape,
// so every handle to the parameter (the module's member, the registry) sees the new place.
inline void rebind_to_storage(const Tensor& param, const Storage& storage, int64_t offset) {
  TensorImpl& impl = *param.impl();
  impl.storage = storage;
  impl.offset = offset;
  impl.strides = contiguous_strides(impl.sizes);
}

// One flat group's buffers:
//   full_params   always, except under P_p: then only while gathered (or always for a group
//                 kept whole by the persistence threshold)
//   owned_params  the slice the optimizer updates: without P_os full_params itself (all of it);
//                 with P_os a view of full_params' owned slice; with P_p its own buffer
//   full_grads    without P_g always (parameters' .grad are views of it); with P_g only while
//                 the group's gradients are being collected and reduced
//   owned_grads   the reduced gradient of owned_params: full_grads itself without P_os, a view
//                 of its owned slice with P_os, its own buffer with P_g (in host memory with
//                 offload_optimizer, where in fp32 it is master_grads itself)
//   master_params mixed precision only: the fp32 copy of owned_params that the optimizer
//                 updates (optimizer state); owned_params is rounded from it after each update
//   master_grads  mixed precision only, during an update: owned_grads in fp32, unscaled
// The optimizer steps update_params() with update_grads(): the master pair under mixed
// precision or offload, else owned_params and owned_grads (offload to NVMe keeps only the host
// master_grads; its master_params live in swap files).
struct FlatGroupBuffers {
  FlatGroup plan;
  Storage full_storage;
  Tensor full_params;
  Tensor owned_params;
  Tensor full_grads;
  Tensor owned_grads;
  Tensor master_params;
  Tensor master_grads;
  const Tensor& update_params() const {
    return master_params.defined() ? master_params : owned_params;
  }
  const Tensor& update_grads() const { return master_grads.defined() ? master_grads : owned_grads; }
  // Gradient reduction (dist/zero/gradient_reducer.h).
  int64_t pending_grads = 0;  // gradients still expected in this backward
  bool reduced = false;       // reduced in this backward
  std::unique_ptr<comm::Work> in_flight;
  Tensor reduce_output;  // comm-tagged receive buffer of an in-flight reduce-scatter
  // P_p (dist/zero/parameter_gatherer.h): whether full_params holds the current values, and a
  // gather still in flight.
  bool gathered = false;
  std::unique_ptr<comm::Work> gather_in_flight;
  // offload_param: owned_params is in host memory; a gather sends this device copy of it.
  Tensor gather_source;
};

// Indexed like the plan's groups; each group stays at one address (hooks hold indices).
using FlatGroupList = std::vector<std::unique_ptr<FlatGroupBuffers>>;

// Moves the model's parameters into one flat buffer per group of `plan` (rank 0's values on
// every rank: a broadcast per group, collective over `data_parallel`) and makes the buffers
// the switches ask for. Every parameter must already have `dtype` and be on `device`.
// A group built partitioned (dist/partitioned_init.h) is adopted instead: its slice becomes
// owned_params and no full buffer is allocated; that needs P_p and the plan's layout, else
// std::invalid_argument names the parameter. `owned_grads_on_host` (offload_optimizer with P_g):
// the owned gradient buffers are made in host memory under grad_offload from the start, so the
// device never holds the 2 Psi / N of them, not even while the engine is being built.
FlatGroupList build_flat_group_buffers(const PartitionPlan& plan, ZeroPartitioning partitioning,
                                       DType dtype, Device device,
                                       comm::Communicator& data_parallel,
                                       bool owned_grads_on_host = false);

}  // namespace zt::dist
