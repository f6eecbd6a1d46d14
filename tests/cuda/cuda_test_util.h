// What the CUDA test files share: the device they test and the guard that turns a case into a
// pass with the message "skipped: no CUDA device" on a machine without one.
#pragma once

#include <doctest/doctest.h>

#include "core/backend.h"
#include "core/device.h"

#define SKIP_WITHOUT_CUDA()             \
  if (::zt::cuda_device_count() == 0) { \
    MESSAGE("skipped: no CUDA device"); \
    return;                             \
  }

namespace zt::cuda_test {

inline const Device kGpu = Device::cuda(0);

}  // namespace zt::cuda_test
