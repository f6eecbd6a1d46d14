// Test cases that need something a machine may lack (a GPU, a GPU for every rank, a CUDA build)
// carry a decorator that names the need. The test binaries' mains exclude the cases whose need
// is absent, so doctest counts them as skipped, never as passed, and `make test` reports them
// in its "N skipped". Usage: TEST_CASE("name" * ZT_NEEDS_CUDA_DEVICE) { ... }
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "core/backend.h"

// A CUDA device visible to this process.
#define ZT_NEEDS_CUDA_DEVICE doctest::test_suite("needs-cuda-device")
// Every rank of the job on a GPU of its own (what NCCL needs).
#define ZT_NEEDS_GPU_PER_RANK doctest::test_suite("needs-gpu-per-rank")
// A build with the CUDA backend (CUDA=1), with or without a device.
#define ZT_NEEDS_CUDA_BUILD doctest::test_suite("needs-cuda-build")
// Debian's dataset-fashion-mnist (scripts/install-deps installs it).
#define ZT_NEEDS_FASHION_MNIST doctest::test_suite("needs-fashion-mnist")
// Debian's fortunes and fortunes-min (scripts/install-deps installs them).
#define ZT_NEEDS_FORTUNES doctest::test_suite("needs-fortunes")

namespace zt::testing {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
inline constexpr const char* kFortunesDir = "/usr/share/games/fortunes";

struct Availability {
  bool cuda_build = false;
  bool cuda_device = false;
  bool gpu_per_rank = false;
  bool fashion_mnist = false;
  bool fortunes = false;
};

// What this process has: a CUDA backend, a device, the dataset. gpu_per_rank is left to the
// multi-rank main, which knows how many ranks share the node.
inline Availability detect_availability() {
  Availability available;
  try {
    (void)backend_for(Device::cuda(0));
    available.cuda_build = true;
  } catch (const std::runtime_error&) {
    available.cuda_build = false;
  }
  available.cuda_device = cuda_device_count() > 0;
  available.fashion_mnist =
      std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz");
  available.fortunes = std::filesystem::exists(std::string(kFortunesDir) + "/fortunes");
  return available;
}

// Excludes the cases whose need `available` lacks, and says once which and why.
inline void exclude_unavailable(doctest::Context& context, const Availability& available,
                                bool print) {
  struct Need {
    bool present;
    const char* suite;
    const char* why;
  };
  for (const Need& need :
       {Need{available.cuda_build, "needs-cuda-build", "built with CUDA=0"},
        Need{available.cuda_device, "needs-cuda-device", "no CUDA device"},
        Need{available.gpu_per_rank, "needs-gpu-per-rank", "not every rank has a GPU of its own"},
        Need{available.fashion_mnist, "needs-fashion-mnist",
             "dataset-fashion-mnist is not installed"},
        Need{available.fortunes, "needs-fortunes", "fortunes is not installed"}}) {
    if (need.present) continue;
    context.addFilter("test-suite-exclude", need.suite);
    if (print) std::printf("skipping the cases of suite %s: %s\n", need.suite, need.why);
  }
}

}  // namespace zt::testing
