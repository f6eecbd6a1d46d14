// What every Communicator implementation shares before it talks to its transport: the
// argument checks (one wording for MPI and NCCL), the overlap test for in-place collectives,
// the per-call counting of CommStats with its clock, and the Work of a call with nothing to
// exchange. Not a public header: communicators include it.
#pragma once

#include <chrono>
#include <initializer_list>
#include <string>
#include <string_view>

#include "comm/communicator.h"
#include "core/device.h"
#include "core/tensor.h"

namespace zt::comm::detail {

// "f32 [2, 3]", or "undefined tensor".
std::string describe(const Tensor& tensor);
// Defined, on `device`, contiguous. `device_rule` ends the message for a tensor elsewhere
// ("this NcclCommunicator works on tensors on cuda:0").
void check_tensor(std::string_view op, std::string_view role, const Tensor& tensor, Device device,
                  std::string_view device_rule);
// One tensor argument of a call and its role in messages ("input", "output", "tensor").
struct NamedTensor {
  std::string_view role;
  const Tensor& tensor;
};
// The device that every tensor of one call is on (the host, or one CUDA device), each checked
// to be defined and contiguous; a tensor on another device than the first is an error naming
// the op, both roles and both devices.
Device call_device(std::string_view op, std::initializer_list<NamedTensor> tensors);
void check_same_dtype(std::string_view op, const Tensor& input, const Tensor& output);
void check_rank(std::string_view op, std::string_view role, int rank, int group_size);
// A send's or recv's peer: another rank of the group; and a tag >= 0.
void check_peer(std::string_view op, std::string_view role, int peer, int rank, int group_size,
                int tag);
// Whether two tensors share any byte of storage.
bool overlaps(const Tensor& a, const Tensor& b);
// Adds one call to the counter of `kind` (buffer bytes and the ring model's payload); the
// caller adds the seconds.
CollectiveCounter& count_call(CommStats& stats, CollectiveKind kind, int64_t buffer_bytes,
                              int64_t full_bytes, int group_size);

// The clock of CollectiveCounter::seconds.
using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A collective with nothing to exchange (a group of one, or no elements): done when made.
class CompletedWork final : public Work {
 public:
  CompletedWork(CollectiveCounter& counter, Clock::time_point start) {
    counter.seconds += seconds_since(start);
  }
  void wait() override {}
  bool test() override { return true; }
};

}  // namespace zt::comm::detail
