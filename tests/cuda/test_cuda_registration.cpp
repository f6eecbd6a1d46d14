// What the CUDA archive brings into a program linked with it (whole): the backend for
// Device::cuda and NCCL's maker for zt::initialize, both registered at static initialisation
// from the archive's own objects, so that the core library needs no CUDA library. A CUDA=0
// build has neither, and says how to get them when asked for a device.
#include <doctest/doctest.h>

#include <stdexcept>

#include "comm/nccl_registry.h"
#include "core/backend.h"
#include "tests/requirements.h"

using namespace zt;

TEST_CASE(
    "NCCL's maker is registered exactly when the cuda backend is: both come from the archive") {
  bool cuda_backend = testing::detect_availability().cuda_build;
  CHECK((comm::registered_nccl_maker() != nullptr) == cuda_backend);
  if (!cuda_backend) {
    CHECK_THROWS_WITH_AS(backend_for(Device::cuda(0)),
                         doctest::Contains("not linked with libzerotrain_cuda.a"),
                         std::runtime_error);
  }
}
