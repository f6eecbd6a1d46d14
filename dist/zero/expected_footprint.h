// The ZeRO paper's figures (section 5) for one rank, written against the three switches: the
// model-state bytes each partition divides by N, and the element-bytes each collective moves
// per training step. The engine's reports print them next to what was measured, and the tests
// hold the measurements to them.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "dist/config.h"
#include "dist/zero/partitioning.h"

namespace zt::dist {

struct ExpectedModelStateBytes {
  int64_t params = 0, grads = 0, optim_state = 0;
};

// Optimizer-state bytes per parameter, K: Adam's two moments 8, SGD with momentum 4, plus 4
// for the fp32 master weights under mixed precision (the paper's 12 for mixed-precision Adam).
int64_t optimizer_state_bytes_per_param(const OptimizerConfig& optimizer, bool mixed_precision);

// Psi parameters of `element_bytes` each (B: 4 in fp32, 2 in fp16/bf16) on N ranks: B Psi of
// parameters, B Psi of gradients and K Psi of optimizer state, each divided by N when its
// switch partitions it.
ExpectedModelStateBytes expected_model_state_bytes(ZeroPartitioning partitioning, int64_t psi,
                                                   int64_t world_size, int64_t element_bytes,
                                                   int64_t state_bytes_per_param);

// With offload_optimizer (always Adam, always an fp32 master: 4 + 8 = 12 bytes per owned
// element) the optimizer state leaves the device: the device keeps `device`'s params and
// grads, and the host (its state in swap files with device "nvme") holds 12 Psi / N of state and 4
// Psi / N of fp32 gradients. With P_g the owned gradient slice leaves the device too (device
// gradients 0 between steps): in 16 bits the host adds B Psi / N for it, in fp32 it is the fp32
// gradient. With offload_param the owned 16-bit (or fp32) parameter slice, B Psi /
// N, moves too.
struct ExpectedOffloadBytes {
  ExpectedModelStateBytes device;
  int64_t host_params = 0, host_grads = 0, host_optim_state = 0, nvme = 0;
};
ExpectedOffloadBytes expected_offload_bytes(ZeroPartitioning partitioning, int64_t psi,
                                            int64_t world_size, int64_t element_bytes,
                                            int64_t state_bytes_per_param, const ZeroConfig& zero);

// Payload bytes per collective in one step of `micro_batches` micro-batches, where `share` is
// B Psi (N-1)/N: without P_os one all-reduce (2 shares); with it a reduce-scatter (once a
// step, or every micro-batch with P_g) and an all-gather of the updated slices (with P_p, two
// gathers of every group per micro-batch instead, forward and backward).
std::vector<std::pair<comm::CollectiveKind, double>> expected_step_traffic(
    ZeroPartitioning partitioning, double share, double micro_batches);

}  // namespace zt::dist
