// The GPT on full (pipeline, tensor, data) grids: pipeline stages built from tensor-parallel
// layers, ZeRO 1 and 2 over the data axis, 5 steps in fp32 against one process training the
// whole GPT on the same global batch: every step's loss equal to 4 decimals, every weight
// (shards joined over the tensor group) within 1e-5 relative, and the pipeline axis carrying
// exactly one activation and one gradient of b*s*h per micro-batch per boundary.
#include <doctest/doctest.h>

#include <vector>

#include "comm/process_grid.h"
#include "tests/mpi/mpi_test_world.h"
#include "tests/mpi/pipeline_test_helpers.h"

namespace zt::pipeline {
namespace {

using namespace test_helpers;
using ::zt::testing::test_world;

constexpr int kSteps3D = 5;

struct Axes {
  int pipeline, tensor;
};

// The grids with a tensor axis the world allows: on 8 ranks (2,2,2), (4,2,1) and (1,2,4); on 4
// ranks (2,2,1) and (1,2,2); on 2 ranks (1,2,1).
std::vector<Axes> tensor_grids(int ranks) {
  std::vector<Axes> grids;
  for (Axes axes : {Axes{2, 2}, Axes{4, 2}, Axes{1, 2}})
    if (ranks % (axes.pipeline * axes.tensor) == 0 &&
        (axes.pipeline == 1 || ranks / (axes.pipeline * axes.tensor) <= 2))
      grids.push_back(axes);
  return grids;
}

TEST_CASE("gpt_on_pipeline_tensor_data_grids_matches_one_process_at_zero_1_and_2") {
  for (Axes axes : tensor_grids(test_world().size()))
    for (int zero_stage : {1, 2})
      check_against_one_process({.pipeline = axes.pipeline,
                                 .tensor = axes.tensor,
                                 .zero_stage = zero_stage,
                                 .steps = kSteps3D});
}

}  // namespace
}  // namespace zt::pipeline
