// StagingCommunicator: each call checks that its tensors share one device; on a device it runs
// the wrapped call through run_on_host / run_async_on_host, on the host it forwards the call.
#include "comm/staging_communicator.h"

#include <utility>

#include "comm/communicator_checks.h"
#include "comm/host_staging.h"

namespace zt::comm {

using detail::call_device;

StagingCommunicator::StagingCommunicator(Communicator& host) : host_(host) {}

StagingCommunicator::StagingCommunicator(std::unique_ptr<Communicator> host)
    : owned_host_(std::move(host)), host_(*owned_host_) {}

std::unique_ptr<Work> StagingCommunicator::all_reduce_async(const Tensor& tensor,
                                                            ReduceOperation op) {
  if (!call_device("all_reduce", {{"tensor", tensor}}).is_cuda())
    return host_.all_reduce_async(tensor, op);
  return run_async_on_host(
      {{tensor, StagedAccess::reads_and_writes}},
      [&](const HostStaging& host) { return host_.all_reduce_async(host.host_tensor(0), op); });
}

std::unique_ptr<Work> StagingCommunicator::reduce_scatter_async(const Tensor& input,
                                                                const Tensor& output,
                                                                ReduceOperation op) {
  if (!call_device("reduce_scatter", {{"input", input}, {"output", output}}).is_cuda())
    return host_.reduce_scatter_async(input, output, op);
  return run_async_on_host(
      {{input, StagedAccess::reads}, {output, StagedAccess::writes}}, [&](const HostStaging& host) {
        return host_.reduce_scatter_async(host.host_tensor(0), host.host_tensor(1), op);
      });
}

std::unique_ptr<Work> StagingCommunicator::all_gather_async(const Tensor& input,
                                                            const Tensor& output) {
  if (!call_device("all_gather", {{"input", input}, {"output", output}}).is_cuda())
    return host_.all_gather_async(input, output);
  return run_async_on_host(
      {{input, StagedAccess::reads}, {output, StagedAccess::writes}}, [&](const HostStaging& host) {
        return host_.all_gather_async(host.host_tensor(0), host.host_tensor(1));
      });
}

std::unique_ptr<Work> StagingCommunicator::broadcast_async(const Tensor& tensor, int root) {
  if (!call_device("broadcast", {{"tensor", tensor}}).is_cuda())
    return host_.broadcast_async(tensor, root);
  StagedAccess access = rank() == root ? StagedAccess::reads : StagedAccess::writes;
  return run_async_on_host({{tensor, access}}, [&](const HostStaging& host) {
    return host_.broadcast_async(host.host_tensor(0), root);
  });
}

void StagingCommunicator::all_to_all(const Tensor& input, const Tensor& output) {
  if (!call_device("all_to_all", {{"input", input}, {"output", output}}).is_cuda())
    return host_.all_to_all(input, output);
  run_on_host(
      {{input, StagedAccess::reads}, {output, StagedAccess::writes}},
      [&](const HostStaging& host) { host_.all_to_all(host.host_tensor(0), host.host_tensor(1)); });
}

void StagingCommunicator::reduce(const Tensor& tensor, int root, ReduceOperation op) {
  if (!call_device("reduce", {{"tensor", tensor}}).is_cuda()) return host_.reduce(tensor, root, op);
  // Only the root's tensor changes.
  StagedAccess access = rank() == root ? StagedAccess::reads_and_writes : StagedAccess::reads;
  run_on_host({{tensor, access}},
              [&](const HostStaging& host) { host_.reduce(host.host_tensor(0), root, op); });
}

void StagingCommunicator::send(const Tensor& tensor, int destination, int tag) {
  if (!call_device("send", {{"tensor", tensor}}).is_cuda())
    return host_.send(tensor, destination, tag);
  run_on_host({{tensor, StagedAccess::reads}},
              [&](const HostStaging& host) { host_.send(host.host_tensor(0), destination, tag); });
}

void StagingCommunicator::recv(const Tensor& tensor, int source, int tag) {
  if (!call_device("recv", {{"tensor", tensor}}).is_cuda()) return host_.recv(tensor, source, tag);
  run_on_host({{tensor, StagedAccess::writes}},
              [&](const HostStaging& host) { host_.recv(host.host_tensor(0), source, tag); });
}

std::unique_ptr<Work> StagingCommunicator::recv_async(const Tensor& tensor, int source, int tag) {
  if (!call_device("recv", {{"tensor", tensor}}).is_cuda())
    return host_.recv_async(tensor, source, tag);
  return Communicator::recv_async(tensor, source, tag);
}

std::unique_ptr<Communicator> StagingCommunicator::split(int color, int key) {
  return std::make_unique<StagingCommunicator>(host_.split(color, key));
}

}  // namespace zt::comm
