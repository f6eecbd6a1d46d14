// Activations between pipeline stages: a tensor whose shape and dtype the receiver does not
// know goes as a small header on a control communicator, then the payload on the data one,
// so that the data communicator's counts are the activations and gradients alone (one of each
// per micro-batch per stage boundary). Sends are asynchronous (their Works hold the tensors
// until they finish); receives block.
#pragma once

#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "core/tensor.h"

namespace zt::pipeline {

// The header: up to 8 dimensions.
inline constexpr int kMaxTransferDims = 8;

// Sends `tensor` (made contiguous) to `peer`: header on `control`, payload on `data`.
using PendingSends = std::vector<std::unique_ptr<comm::Work>>;
void send_tensor_with_shape(comm::Communicator& data, comm::Communicator& control,
                            const Tensor& tensor, int peer, int tag, PendingSends& pending);
// Receives what send_tensor_with_shape sent, into a new host tensor.
Tensor recv_tensor_with_shape(comm::Communicator& data, comm::Communicator& control, int peer,
                              int tag);

// The header alone (the shape probe passes shapes and a status with it). status 0: fine.
struct TransferHeader {
  int64_t status = 0;
  DType dtype = DType::f32;
  Shape sizes;
};
void send_header(comm::Communicator& control, const TransferHeader& header, int peer, int tag,
                 PendingSends& pending);
// Waits for every send of `pending` and empties it.
void wait_all(PendingSends& pending);
TransferHeader recv_header(comm::Communicator& control, int peer, int tag);

}  // namespace zt::pipeline
