// DeepSpeed's pipe_partitioned and grad_partitioned: with a tensor axis, the ranks of a tensor
// group hold the same boundary activation (and its gradient), so each sends only its 1/tp
// slice to the same tensor rank of the neighbouring stage, and the receivers all-gather the
// slices over their tensor group. The pipeline axis then carries 1/tp of the tensor per rank;
// the tensor axis carries one all-gather of it per receive.
#pragma once

#include "comm/communicator.h"
#include "core/tensor.h"

namespace zt::pipeline {

// Elements in each of `parts` slices of a tensor of `numel` elements (the last one padded).
int64_t partition_numel(int64_t numel, int parts);

// Slice `index` of `parts` of the flattened `tensor`, a new contiguous 1-d tensor of
// partition_numel elements (zeros past the end of the tensor).
Tensor partition_slice(const Tensor& tensor, int parts, int index);

// The whole tensor of shape `sizes` from this rank's slice: an all-gather over `group` (whose
// size is the number of parts, each rank's slice at its rank). Collective over the group.
Tensor gather_partitioned(const Tensor& slice, const Shape& sizes, comm::Communicator& group);

}  // namespace zt::pipeline
