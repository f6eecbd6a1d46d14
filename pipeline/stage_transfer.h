// Activations between pipeline stages: a tensor whose shape and dtype the receiver does not
// know goes as a small header on a control communicator, then the payload on the data one,
// so that the data communicator's counts are the activations and gradients alone (one of each
// per micro-batch per stage boundary). Sends are asynchronous (their Works hold the tensors
// until they finish); receives either block or are posted ahead (PostedTensorReceive): the
// header as soon as the receive is scheduled, the payload once the header is in. Nothing polls
// them in between: under mpi_yield_when_idle every MPI_Test that finds nothing gives up the
// core, which on a loaded machine costs a time slice each.
#pragma once

#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "core/tensor.h"

namespace zt::pipeline {

// The header: up to 8 dimensions.
inline constexpr int kMaxTransferDims = 8;

// Sends `tensor` (made contiguous) to `peer`: header on `control`, payload on `data`; with
// parts > 1 the payload is slice `part` of that many (pipeline/partitioned_transfer.h).
using PendingSends = std::vector<std::unique_ptr<comm::Work>>;
void send_tensor_with_shape(comm::Communicator& data, comm::Communicator& control,
                            const Tensor& tensor, int peer, int tag, PendingSends& pending,
                            int parts = 1, int part = 0);
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

// A receive of what send_tensor_with_shape sends, posted before the data is needed. Messages
// of one (peer, tag) match posted receives in posting order.
class PostedTensorReceive {
 public:
  // `parts` > 1: the payload is one slice of that many (pipeline/partitioned_transfer.h) of
  // the tensor the header describes.
  PostedTensorReceive(comm::Communicator& data, comm::Communicator& control, int peer, int tag,
                      int parts = 1);
  // Posts the payload's receive once the header is in; true when it is (or was) posted.
  bool advance();
  // Waits for the header and the payload: the received tensor (a new host tensor), or with
  // parts > 1 the received 1-d slice.
  Tensor wait();
  // The whole tensor's shape, from the header (after wait()).
  const Shape& sizes() const { return sizes_; }

 private:
  comm::Communicator& data_;
  int peer_, tag_, parts_;
  Shape sizes_;
  Tensor header_, payload_;
  std::unique_ptr<comm::Work> header_work_, payload_work_;
};

}  // namespace zt::pipeline
