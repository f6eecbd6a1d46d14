// Staging a call's device tensors through host memory, for a communicator that works on host
// memory (MpiCommunicator without CUDA-aware MPI). Each tensor gets a host copy in pinned
// memory (pageable when no pinned_host_allocator() is registered, or for a host tensor, which
// tests stage to check this machinery without a GPU) tagged MemoryTag::comm.
// Invariants: tensors that share device storage share one host buffer at the same relative
// places, so in-place and aliased arguments mean on the host what they meant on the device;
// what the call reads is copied in before it runs (the device->host copy waits for the compute
// stream, so earlier kernels' results are seen); what it writes is copied back after, and the
// device holds it when copy-back returns. The host call counts the stats, so staged calls
// count exactly what the same call on host tensors counts.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "core/tensor.h"

namespace zt::comm {

// What a call does with one of its tensors (broadcast reads on its root, writes elsewhere).
enum class StagedAccess : uint8_t { reads, writes, reads_and_writes };

struct StagedTensor {
  const Tensor& device_tensor;  // contiguous (checked by the caller)
  StagedAccess access;
};

class HostStaging {
 public:
  explicit HostStaging(std::initializer_list<StagedTensor> tensors);
  // The host copy of the index-th tensor given, in the same order.
  const Tensor& host_tensor(size_t index) const { return host_tensors_[index]; }
  // Copies what the call wrote into the device tensors it was staged from.
  void copy_back() const;

 private:
  std::vector<Tensor> device_tensors_;
  std::vector<Tensor> host_tensors_;
  std::vector<StagedAccess> accesses_;
};

// Runs a blocking call on host copies of `tensors` and copies the results back before it
// returns.
void run_on_host(std::initializer_list<StagedTensor> tensors,
                 const std::function<void(const HostStaging&)>& host_call);
// Starts an asynchronous call on host copies of `tensors`. The Work it returns keeps the
// copies alive and copies the results back when the call completes: in wait(), or when test()
// first reports it done.
std::unique_ptr<Work> run_async_on_host(
    std::initializer_list<StagedTensor> tensors,
    const std::function<std::unique_ptr<Work>(const HostStaging&)>& host_call);

}  // namespace zt::comm
