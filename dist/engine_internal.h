// What the engine's source files share: small helpers over flat buffers and the state of one
// flat group (dist/engine.cpp, dist/engine_stage3.cpp, dist/engine_report.cpp). Not a public
// header: nothing outside those files includes it.
#pragma once

#include <chrono>
#include <memory>

#include "comm/communicator.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "dist/partition_plan.h"

namespace zt::dist {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

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

// One flat group's buffers. Which ones exist depends on the stage:
//   full_params   stages 0-2 always; stage 3 only while gathered (or always if persistent)
//   owned_params  the slice the optimizer updates: a view of full_params at stages 0-2 (all of
//                 it at stage 0), its own buffer at stage 3
//   full_grads    stages 0-1 always (parameters' .grad are views of it); stages 2-3 only
//                 while the group's gradients are being collected and reduced
//   owned_grads   the reduced gradient of owned_params: a view of full_grads at stages 0-1,
//                 its own buffer at stages 2-3
//   master_params mixed precision only: the fp32 copy of owned_params that the optimizer
//                 updates (optimizer state); owned_params is rounded from it after each update
//   master_grads  mixed precision only, during an update: owned_grads in fp32, unscaled
// The optimizer steps update_params() with update_grads(): the master pair under mixed
// precision, else owned_params and owned_grads.
struct Engine::GroupState {
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
  const Tensor& update_grads() const {
    return master_params.defined() ? master_grads : owned_grads;
  }
  int64_t pending_grads = 0;  // gradients still expected in this backward
  bool reduced = false;       // reduced in this backward
  std::unique_ptr<comm::Work> in_flight;
  Tensor reduce_output;  // comm-tagged receive buffer of an in-flight reduce-scatter
  // Stage 3: whether full_params holds the current values, and a gather still in flight.
  bool gathered = false;
  std::unique_ptr<comm::Work> gather_in_flight;
};

}  // namespace zt::dist
