// The compressed all-reduce of 1-bit Adam, 0/1 Adam and 1-bit LAMB (DeepSpeed's
// compressed_allreduce): each rank adds its worker error to its buffer and sends only the signs
// (1 bit an element, packed) and one scale, ||x|| / sqrt(n); rank r is the server of chunk r of
// the buffer: it averages the N ranks' sign-times-scale of its chunk, adds its server error,
// compresses that the same way, and every rank gathers every server's signs and scale. Each
// compression keeps what it lost (x - scale * sign(x)) as the error added before the next one,
// so nothing is lost for good. Signs of 0 count as +1.
// Traffic of one call on N ranks for an n-element buffer (padded to a multiple of 8N): an
// all_to_all of the n/8 sign bytes and an all_gather of n/8 bytes of server signs, each
// sending n/8 (N-1)/N, plus two all_gathers of one f32 scale: about n/4 bytes against the
// 8n (N-1)/N of an f32 all_reduce, 32 times less at any N.
// Invariant: called by every rank of the group in the same order with buffers of the same size;
// the buffer is f32, in host memory or on the device whose tensors the communicator takes (an
// NCCL one): the arithmetic runs on the host either way, and only the packed signs and the
// scales travel on the device.
#pragma once

#include <cstdint>

#include "comm/communicator.h"
#include "core/tensor.h"

namespace zt::comm {

class CompressedAllReduce {
 public:
  // For buffers of `numel` elements over `communicator`'s ranks; the errors start at zero.
  CompressedAllReduce(Communicator& communicator, int64_t numel);

  // Replaces `buffer` (numel f32 elements, contiguous, on the host or the communicator's device)
  // by the compressed average over the ranks, and updates this rank's worker and server errors.
  // Collective.
  void average(const Tensor& buffer);

  int64_t numel() const { return numel_; }
  int64_t padded_numel() const { return worker_error_.numel(); }
  const Tensor& worker_error() const { return worker_error_; }  // padded_numel elements
  const Tensor& server_error() const { return server_error_; }  // padded_numel / N elements
  // Forgets both errors (DeepSpeed drops them when it loads a checkpoint).
  void reset_errors();

 private:
  // The server side before its compression: the mean of every rank's sign-times-scale of this
  // rank's chunk (host tensors) plus the server error.
  Tensor server_average(const Tensor& chunk_signs, const Tensor& scales);

  Communicator& communicator_;
  int64_t numel_;
  Tensor worker_error_;
  Tensor server_error_;
};

}  // namespace zt::comm
