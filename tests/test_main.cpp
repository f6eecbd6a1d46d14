// The unit-test binary's entry point (doctest). Cases that need what this machine lacks (a GPU,
// a CUDA build, the dataset: tests/requirements.h) are excluded, so doctest counts them as
// skipped.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "tests/requirements.h"

int main(int argc, char** argv) {
  doctest::Context context;
  zt::testing::Availability available = zt::testing::detect_availability();
  available.gpu_per_rank = available.cuda_device;  // one process: its GPU is its own
  zt::testing::exclude_unavailable(context, available, /*print=*/true);
  context.applyCommandLine(argc, argv);
  int status = context.run();
  return status;
}
