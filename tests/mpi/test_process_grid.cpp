// Multi-rank tests of ProcessGrid: the layout functions on shapes of every kind, the groups a
// data-parallel grid cuts from the world, and the errors for shapes it can't build yet.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <stdexcept>
#include <string>

#include "comm/process_grid.h"
#include "core/factory.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::comm {
namespace {

using testing::test_world;

TEST_CASE("grid_layout_puts_tensor_fastest_then_pipeline_then_data") {
  GridShape shape{.data = 2, .pipeline = 3, .tensor = 4};
  CHECK(shape.ranks() == 24);
  CHECK(grid_coordinates(shape, 0) == GridCoordinates{0, 0, 0});
  CHECK(grid_coordinates(shape, 1) == GridCoordinates{0, 0, 1});
  CHECK(grid_coordinates(shape, 4) == GridCoordinates{0, 1, 0});
  CHECK(grid_coordinates(shape, 12) == GridCoordinates{1, 0, 0});
  CHECK(grid_coordinates(shape, 23) == GridCoordinates{1, 2, 3});
  for (int rank = 0; rank < shape.ranks(); ++rank)
    CHECK(grid_world_rank(shape, grid_coordinates(shape, rank)) == rank);
  CHECK_THROWS_AS(grid_coordinates(shape, 24), std::out_of_range);
  CHECK_THROWS_AS(grid_world_rank(shape, {.data = 0, .pipeline = 3, .tensor = 0}),
                  std::out_of_range);
}

TEST_CASE("data_parallel_grid_puts_every_rank_on_the_data_axis") {
  Communicator& world = test_world();
  ProcessGrid grid = ProcessGrid::data_parallel(world);
  CHECK(grid.shape() == GridShape{.data = world.size()});
  CHECK(grid.coordinates() == GridCoordinates{.data = world.rank()});
  CHECK(grid.data_group().size() == world.size());
  CHECK(grid.data_group().rank() == world.rank());
  CHECK(grid.pipeline_group().size() == 1);
  CHECK(grid.tensor_group().size() == 1);
  CHECK(&grid.world() == &world);
  // The data group reduces over every rank; the one-rank groups leave a tensor as it was.
  Tensor rank_value = from_values({double(world.rank())}, {1}, {.dtype = DType::f64});
  grid.data_group().all_reduce(rank_value);
  CHECK(rank_value.item() == world.size() * (world.size() - 1) / 2.0);
  grid.tensor_group().all_reduce(rank_value);
  grid.pipeline_group().all_reduce(rank_value);
  CHECK(rank_value.item() == world.size() * (world.size() - 1) / 2.0);
}

TEST_CASE("pipeline_grid_cuts_one_pipeline_group_per_data_replica") {
  Communicator& world = test_world();
  if (world.size() % 2 != 0) return;  // one rank: no pipeline of two stages
  ProcessGrid grid(world, {.data = world.size() / 2, .pipeline = 2});
  CHECK(grid.coordinates() ==
        GridCoordinates{.data = world.rank() / 2, .pipeline = world.rank() % 2});
  CHECK(grid.pipeline_group().size() == 2);
  CHECK(grid.pipeline_group().rank() == world.rank() % 2);
  CHECK(grid.data_group().size() == world.size() / 2);
  // The pipeline group of rank r holds r and its neighbour: their world ranks sum to 4d + 1.
  Tensor rank_value = from_values({double(world.rank())}, {1}, {.dtype = DType::f64});
  grid.pipeline_group().all_reduce(rank_value);
  CHECK(rank_value.item() == 4.0 * (world.rank() / 2) + 1.0);
}

TEST_CASE("grid_shapes_it_cannot_build_are_errors_naming_the_shape") {
  Communicator& world = test_world();
  int ranks = world.size();
  auto error_of = [&](const GridShape& shape) -> std::string {
    try {
      ProcessGrid grid(world, shape);
    } catch (const std::invalid_argument& error) {
      return error.what();
    }
    return "(no error)";
  };
  CHECK(error_of({.data = 1, .pipeline = 1, .tensor = ranks}) == "(no error)");
  CHECK(error_of({.data = 1, .pipeline = ranks, .tensor = 1}) == "(no error)");
  CHECK(
      error_of({.data = ranks + 1}) ==
      fmt::format("process grid: data {} x pipeline 1 x tensor 1 needs {} ranks, the world has {}",
                  ranks + 1, ranks + 1, ranks));
  CHECK(error_of({.data = 0}) ==
        "process grid: every axis needs at least 1 rank, got data 0 x pipeline 1 x tensor 1");
}

TEST_CASE("tensor_axis_groups_are_neighbouring_ranks_and_data_groups_stride_over_them") {
  Communicator& world = test_world();
  if (world.size() % 2 != 0) return;  // one rank: no tensor axis to cut
  ProcessGrid grid(world, factor_world(world.size(), 2));
  CHECK(grid.shape() == GridShape{.data = world.size() / 2, .tensor = 2});
  CHECK(grid.tensor_group().size() == 2);
  CHECK(grid.tensor_group().rank() == world.rank() % 2);
  CHECK(grid.data_group().size() == world.size() / 2);
  CHECK(grid.data_group().rank() == world.rank() / 2);
  // The tensor group of rank r is {r - r % 2, r - r % 2 + 1}: its sum of world ranks says so.
  Tensor rank_value = from_values({double(world.rank())}, {1}, {.dtype = DType::f64});
  grid.tensor_group().all_reduce(rank_value);
  CHECK(rank_value.item() == 2.0 * (world.rank() - world.rank() % 2) + 1.0);
  // The data group of rank r holds the ranks of r's parity.
  Tensor parity_value = from_values({double(world.rank())}, {1}, {.dtype = DType::f64});
  grid.data_group().all_reduce(parity_value);
  const int n = world.size() / 2;
  CHECK(parity_value.item() == double(2 * (n * (n - 1) / 2) + n * (world.rank() % 2)));
}

TEST_CASE("a_world_the_grid_cannot_factor_is_one_line_naming_the_sizes") {
  CHECK(factor_world(8, 2, 2) == GridShape{.data = 2, .pipeline = 2, .tensor = 2});
  CHECK(factor_world(8, 4) == GridShape{.data = 2, .tensor = 4});
  try {
    factor_world(6, 4);
    FAIL("no error");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()) ==
          "process grid: a world of 6 ranks cannot be split into tensor 4 x pipeline 1 (the "
          "world size must be a multiple of their product, 4)");
  }
}

}  // namespace
}  // namespace zt::comm
