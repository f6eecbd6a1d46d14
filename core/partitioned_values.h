// A tensor that exists only as this rank's slice: what a parameter built inside a partitioned
// construction scope (dist/partitioned_init.h, DeepSpeed's zero.Init) holds until the ZeRO
// engine takes it. The tensor keeps its full shape and dtype, but its storage is unallocated, so
// any read names it; its values are the owned slice of its flat group (the group's parameters
// end to end, padded to a multiple of world_size, rank r holding slice r), the same layout as
// the engine's partition plan, so the engine adopts the slice as it is.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace zt {

// One flat group's owned slice, shared by the group's tensors.
struct PartitionedGroup {
  Tensor owned;              // 1-d, slice_numel() elements: this rank's part of the flat buffer
  int64_t numel = 0;         // the group's tensors' elements together
  int64_t padded_numel = 0;  // numel rounded up to a multiple of world_size
  int world_size = 1;
  int rank = 0;
  std::string module_name;  // the module whose own parameters the group holds (for errors)

  int64_t slice_numel() const { return padded_numel / world_size; }
  int64_t slice_begin() const { return int64_t(rank) * slice_numel(); }
};

// Where one tensor's values lie in its group, and which of them this rank holds.
struct PartitionedValues {
  std::shared_ptr<PartitionedGroup> group;
  int64_t offset = 0;  // the tensor's first element in the group's flat buffer
  int64_t numel = 0;
  std::string name;  // the parameter's name, dotted from the outermost module built so far

  // The elements of the tensor (row-major) this rank holds: [owned_first(), owned_end()).
  int64_t owned_first() const;
  int64_t owned_end() const;
  // Those elements: a 1-d view of the group's owned slice (empty when it holds none).
  Tensor owned_part() const;
};

// Whether `tensor` holds only a slice (its impl's `partitioned` is set).
inline bool is_partitioned(const Tensor& tensor) {
  return tensor.defined() && tensor.impl()->partitioned != nullptr;
}

// Makes `tensor` (contiguous, `values.numel` elements) a slice-only tensor: its impl gets
// `values` and a fresh unallocated storage of its full size, on `device` with `dtype`, whose
// reads fail naming the parameter. Its old storage is dropped by this impl.
void make_partitioned(const Tensor& tensor, std::shared_ptr<PartitionedValues> values, DType dtype,
                      Device device);

// The one-line error for an op that needs a slice-only tensor's full values.
std::string partitioned_read_error(const PartitionedValues& values);

}  // namespace zt
