// The communication of Megatron-style tensor parallelism as autograd operators over the tensor
// group: each has a forward collective and its conjugate in backward, so a model written with
// them gets correct gradients from the ordinary chain rule.
//   copy_to_tp_region:     forward identity,                backward all-reduce (sum)
//   reduce_from_tp_region: forward all-reduce (sum),        backward identity
//   gather_from_tp_region: forward all-gather (last dim),   backward own slice of the last dim
//   scatter_to_tp_region:  forward own slice of last dim,   backward all-gather (last dim)
// Invariants: every rank of the group calls each operator in the same order, forward and
// backward (the collectives are blocking); the group's communicator serves the tensors' device
// and outlives the graph. A group of one rank makes every operator the identity.
#pragma once

#include "comm/communicator.h"
#include "core/tensor.h"

namespace zt::tensor_parallel {

Tensor copy_to_tp_region(const Tensor& x, comm::Communicator& group);
Tensor reduce_from_tp_region(const Tensor& x, comm::Communicator& group);
Tensor gather_from_tp_region(const Tensor& x, comm::Communicator& group);
Tensor scatter_to_tp_region(const Tensor& x, comm::Communicator& group);

// Forward-only helpers on plain tensors (no graph): the sum and the concatenation along the
// last dim over the group.
Tensor all_reduced(const Tensor& x, comm::Communicator& group);
Tensor all_gathered_last_dim(const Tensor& x, comm::Communicator& group);

}  // namespace zt::tensor_parallel
