// What the CUDA test files share: the device they test, and the decorator of the cases that
// need one (ZT_NEEDS_CUDA_DEVICE, tests/requirements.h): skipped on a machine without a GPU.
#pragma once

#include <doctest/doctest.h>

#include "core/backend.h"
#include "core/device.h"
#include "tests/requirements.h"

namespace zt::cuda_test {

inline const Device kGpu = Device::cuda(0);

}  // namespace zt::cuda_test
