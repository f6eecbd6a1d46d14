// ProcessGrid: checks the shape, places this rank on the grid and cuts the axis groups. Each
// group's color is the rank's coordinates on the other two axes (flattened), its key the
// coordinate on its own axis, so group rank == coordinate on that axis.
#include "comm/process_grid.h"

#include <fmt/format.h>

#include <stdexcept>

namespace zt::comm {

std::string GridShape::str() const {
  return fmt::format("data {} x pipeline {} x tensor {}", data, pipeline, tensor);
}

GridCoordinates grid_coordinates(const GridShape& shape, int world_rank) {
  if (world_rank < 0 || world_rank >= shape.ranks())
    throw std::out_of_range(
        fmt::format("grid_coordinates: rank {} is outside the grid {} ({} ranks)", world_rank,
                    shape.str(), shape.ranks()));
  return {.data = world_rank / (shape.pipeline * shape.tensor),
          .pipeline = (world_rank / shape.tensor) % shape.pipeline,
          .tensor = world_rank % shape.tensor};
}

int grid_world_rank(const GridShape& shape, const GridCoordinates& coordinates) {
  bool inside = coordinates.data >= 0 && coordinates.data < shape.data &&
                coordinates.pipeline >= 0 && coordinates.pipeline < shape.pipeline &&
                coordinates.tensor >= 0 && coordinates.tensor < shape.tensor;
  if (!inside)
    throw std::out_of_range(fmt::format(
        "grid_world_rank: coordinates (data {}, pipeline {}, tensor {}) are outside the grid {}",
        coordinates.data, coordinates.pipeline, coordinates.tensor, shape.str()));
  return (coordinates.data * shape.pipeline + coordinates.pipeline) * shape.tensor +
         coordinates.tensor;
}

ProcessGrid::ProcessGrid(Communicator& world, const GridShape& shape)
    : world_(&world), shape_(shape) {
  if (shape.data < 1 || shape.pipeline < 1 || shape.tensor < 1)
    throw std::invalid_argument(
        fmt::format("process grid: every axis needs at least 1 rank, got {}", shape.str()));
  if (shape.ranks() != world.size())
    throw std::invalid_argument(fmt::format("process grid: {} needs {} ranks, the world has {}",
                                            shape.str(), shape.ranks(), world.size()));
  coordinates_ = grid_coordinates(shape, world.rank());
  const GridCoordinates& at = coordinates_;
  data_group_ = world.split(at.pipeline * shape.tensor + at.tensor, at.data);
  pipeline_group_ = world.split(at.data * shape.tensor + at.tensor, at.pipeline);
  tensor_group_ = world.split(at.data * shape.pipeline + at.pipeline, at.tensor);
}

ProcessGrid ProcessGrid::data_parallel(Communicator& world) {
  return ProcessGrid(world, {.data = world.size()});
}

GridShape factor_world(int world_size, int tensor, int pipeline) {
  if (tensor < 1 || pipeline < 1 || world_size < 1 || world_size % (tensor * pipeline) != 0)
    throw std::invalid_argument(fmt::format(
        "process grid: a world of {} ranks cannot be split into tensor {} x pipeline {} "
        "(the world size must be a multiple of their product, {})",
        world_size, tensor, pipeline, tensor * pipeline));
  return {.data = world_size / (tensor * pipeline), .pipeline = pipeline, .tensor = tensor};
}

}  // namespace zt::comm
