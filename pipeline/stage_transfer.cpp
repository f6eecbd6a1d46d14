// Header layout: [status, dtype, ndim, dims...] as i64.
#include "pipeline/stage_transfer.h"

#include <fmt/format.h>

#include <stdexcept>

#include "core/factory.h"
#include "pipeline/partitioned_transfer.h"

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

namespace {

Tensor header_buffer() {
  return zeros({3 + kMaxTransferDims}, {.dtype = DType::i64, .tag = MemoryTag::comm});
}

TransferHeader unpack_header(const Tensor& packed) {
  const int64_t* values = packed.data_ptr<int64_t>();
  TransferHeader header{.status = values[0], .dtype = DType(values[1])};
  for (int64_t i = 0; i < values[2]; ++i) header.sizes.push_back(values[3 + i]);
  return header;
}

}  // namespace

TransferHeader recv_header(comm::Communicator& control, int peer, int tag) {
  Tensor packed = header_buffer();
  control.recv(packed, peer, tag);
  return unpack_header(packed);
}

PostedTensorReceive::PostedTensorReceive(comm::Communicator& data, comm::Communicator& control,
                                         int peer, int tag, int parts)
    : data_(data), peer_(peer), tag_(tag), parts_(parts), header_(header_buffer()) {
  header_work_ = control.recv_async(header_, peer, tag);
}

bool PostedTensorReceive::advance() {
  if (payload_work_) return true;
  if (!header_work_->test()) return false;
  TransferHeader header = unpack_header(header_);
  sizes_ = header.sizes;
  int64_t numel = 1;
  for (int64_t size : sizes_) numel *= size;
  payload_ = empty(parts_ > 1 ? Shape{partition_numel(numel, parts_)} : sizes_,
                   {.dtype = header.dtype, .tag = MemoryTag::activation});
  payload_work_ = data_.recv_async(payload_, peer_, tag_);
  return true;
}

Tensor PostedTensorReceive::wait() {
  if (!payload_work_) {
    header_work_->wait();
    advance();
  }
  payload_work_->wait();
  return payload_;
}

void send_tensor_with_shape(comm::Communicator& data, comm::Communicator& control,
                            const Tensor& tensor, int peer, int tag, PendingSends& pending,
                            int parts, int part) {
  send_header(control, {.dtype = tensor.dtype(), .sizes = tensor.sizes()}, peer, tag, pending);
  pending.push_back(data.send_async(
      parts > 1 ? partition_slice(tensor, parts, part) : tensor.contiguous(), peer, tag));
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
