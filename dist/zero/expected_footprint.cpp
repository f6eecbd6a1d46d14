// The paper's memory and traffic formulas (dist/zero/expected_footprint.h).
#include "dist/zero/expected_footprint.h"

#include <algorithm>

namespace zt::dist {

int64_t optimizer_state_bytes_per_param(const OptimizerConfig& optimizer, bool mixed_precision) {
  int64_t bytes = mixed_precision ? 4 : 0;
  if (optimizer.is_adam())
    bytes += 8;
  else if (optimizer.momentum != 0.0)
    bytes += 4;
  return bytes;
}

ExpectedModelStateBytes expected_model_state_bytes(ZeroPartitioning partitioning, int64_t psi,
                                                   int64_t world_size, int64_t element_bytes,
                                                   int64_t state_bytes_per_param) {
  auto share = [&](bool partitioned, int64_t bytes_per_param) {
    return partitioned ? bytes_per_param * psi / world_size : bytes_per_param * psi;
  };
  return {.params = share(partitioning.parameters, element_bytes),
          .grads = share(partitioning.gradients, element_bytes),
          .optim_state = share(partitioning.optimizer_states, state_bytes_per_param)};
}

ExpectedOffloadBytes expected_offload_bytes(ZeroPartitioning partitioning, int64_t psi,
                                            int64_t world_size, int64_t element_bytes,
                                            int64_t state_bytes_per_param, const ZeroConfig& zero) {
  ExpectedOffloadBytes bytes;
  bytes.device = expected_model_state_bytes(partitioning, psi, world_size, element_bytes,
                                            state_bytes_per_param);
  if (zero.offload_optimizer.enabled()) {
    bytes.device.optim_state = 0;
    bytes.host_grads = 4 * psi / world_size;
    if (partitioning.gradients) {
      // The owned gradient accumulates on the host (in fp32 it is the fp32 gradient itself).
      bytes.device.grads = 0;
      if (element_bytes != 4) bytes.host_grads += element_bytes * psi / world_size;
    }
    (zero.offload_optimizer.to_nvme() ? bytes.nvme : bytes.host_optim_state) =
        12 * psi / world_size;
  }
  if (zero.offload_param.enabled()) {
    int64_t owned = element_bytes * psi / world_size;
    bytes.device.params -= owned;
    // "nvme" keeps the first max_in_cpu elements in host memory (up to group boundaries).
    int64_t in_cpu = zero.offload_param.to_nvme()
                         ? std::min(owned, element_bytes * zero.offload_param.max_in_cpu)
                         : owned;
    bytes.host_params = in_cpu;
    bytes.nvme += owned - in_cpu;
  }
  return bytes;
}

std::vector<std::pair<comm::CollectiveKind, double>> expected_step_traffic(
    ZeroPartitioning partitioning, double share, double micro_batches) {
  using comm::CollectiveKind;
  if (!partitioning.optimizer_states) return {{CollectiveKind::all_reduce, 2.0 * share}};
  double reduce_scatter = partitioning.gradients ? micro_batches * share : share;
  if (partitioning.parameters) {
    return {{CollectiveKind::all_gather, 2.0 * micro_batches * share},
            {CollectiveKind::reduce_scatter, reduce_scatter}};
  }
  return {{CollectiveKind::reduce_scatter, reduce_scatter}, {CollectiveKind::all_gather, share}};
}

}  // namespace zt::dist
