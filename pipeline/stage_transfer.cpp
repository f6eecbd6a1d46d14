// Header layout: [status, dtype, ndim, dims...] as i64.
#include "pipeline/stage_transfer.h"

#include <fmt/format.h>

#include <stdexcept>

#include "core/factory.h"

namespace zt::pipeline {

void send_header(comm::Communicator& control, const TransferHeader& header, int peer, int tag,
                 PendingSends& pending) {
  if (header.sizes.size() > size_t(kMaxTransferDims))
    throw std::invalid_argument(
        fmt::format("pipeline: a tensor of {} dimensions between stages "
                    "(at most {})",
                    header.sizes.size(), kMaxTransferDims));
  Tensor packed = zeros({3 + kMaxTransferDims}, {.dtype = DType::i64, .tag = MemoryTag::comm});
  int64_t* values = packed.data_ptr<int64_t>();
  values[0] = header.status;
  values[1] = int64_t(header.dtype);
  values[2] = int64_t(header.sizes.size());
  for (size_t i = 0; i < header.sizes.size(); ++i) values[3 + i] = header.sizes[i];
  pending.push_back(control.send_async(packed, peer, tag));
}

TransferHeader recv_header(comm::Communicator& control, int peer, int tag) {
  Tensor packed = zeros({3 + kMaxTransferDims}, {.dtype = DType::i64, .tag = MemoryTag::comm});
  control.recv(packed, peer, tag);
  const int64_t* values = packed.data_ptr<int64_t>();
  TransferHeader header{.status = values[0], .dtype = DType(values[1])};
  for (int64_t i = 0; i < values[2]; ++i) header.sizes.push_back(values[3 + i]);
  return header;
}

void send_tensor_with_shape(comm::Communicator& data, comm::Communicator& control,
                            const Tensor& tensor, int peer, int tag, PendingSends& pending) {
  send_header(control, {.dtype = tensor.dtype(), .sizes = tensor.sizes()}, peer, tag, pending);
  pending.push_back(data.send_async(tensor.contiguous(), peer, tag));
}

void wait_all(PendingSends& pending) {
  for (auto& work : pending) work->wait();
  pending.clear();
}

Tensor recv_tensor_with_shape(comm::Communicator& data, comm::Communicator& control, int peer,
                              int tag) {
  TransferHeader header = recv_header(control, peer, tag);
  Tensor received = empty(header.sizes, {.dtype = header.dtype, .tag = MemoryTag::activation});
  data.recv(received, peer, tag);
  return received;
}

}  // namespace zt::pipeline
