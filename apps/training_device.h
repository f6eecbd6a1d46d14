// The device a training rank runs on, from --device: the host, or GPU (local rank modulo the
// GPU count), so that ranks on one node spread over its GPUs.
#pragma once

#include <string>

#include "apps/cli_flags.h"
#include "comm/mpi_runtime.h"
#include "core/backend.h"
#include "core/device.h"

namespace zt::apps {

inline Device training_device(const std::string& choice, const comm::MpiRuntime& runtime) {
  if (choice == "cpu") return Device::cpu();
  int gpus = cuda_device_count();
  if (gpus == 0) {
    throw FlagError("--device cuda: no CUDA device is visible (or this build has no CUDA backend)");
  }
  return Device::cuda(runtime.local_rank() % gpus);
}

}  // namespace zt::apps
