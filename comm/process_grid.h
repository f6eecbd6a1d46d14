// ProcessGrid: the world's ranks laid out as a grid, data x pipeline x tensor, with one
// communicator per axis cut from the world by split(). Layout: tensor varies fastest, then
// pipeline, then data, so world_rank = (data * pipeline_size + pipeline) * tensor_size + tensor
// and a tensor-parallel group is made of neighbouring ranks (the ones sharing a node).
// All three axes may be longer than 1: tensor_parallel/ splits layers across the tensor group,
// pipeline/ runs the stages, and ZeRO partitions over the data group.
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.h"

namespace zt::comm {

struct GridShape {
  int data = 1;
  int pipeline = 1;
  int tensor = 1;

  int ranks() const { return data * pipeline * tensor; }
  std::string str() const;  // "data 4 x pipeline 1 x tensor 1"
  bool operator==(const GridShape&) const = default;
};

// A rank's place on each axis.
struct GridCoordinates {
  int data = 0;
  int pipeline = 0;
  int tensor = 0;
  bool operator==(const GridCoordinates&) const = default;
};

// The layout above, as pure functions of the shape; both throw std::out_of_range when the
// rank or a coordinate is outside the grid.
GridCoordinates grid_coordinates(const GridShape& shape, int world_rank);
int grid_world_rank(const GridShape& shape, const GridCoordinates& coordinates);
// The shape of a world of `world_size` ranks with those tensor and pipeline sizes: the data
// axis takes the rest, world / (tensor * pipeline), as DeepSpeed divides it. Throws
// std::invalid_argument naming the three numbers when the world is not a multiple of the
// product (or a size is below 1).
GridShape factor_world(int world_size, int tensor, int pipeline = 1);

class ProcessGrid {
 public:
  // Collective over `world`, which must outlive the grid. Throws std::invalid_argument when
  // shape.ranks() differs from world.size() or an axis is shorter than 1.
  ProcessGrid(Communicator& world, const GridShape& shape);
  // Every rank on the data axis: pure data parallelism (ZeRO).
  static ProcessGrid data_parallel(Communicator& world);

  const GridShape& shape() const { return shape_; }
  const GridCoordinates& coordinates() const { return coordinates_; }  // this rank's
  Communicator& world() const { return *world_; }
  // The ranks that differ from this one only on that axis, ordered by their coordinate on it.
  Communicator& data_group() const { return *data_group_; }
  Communicator& pipeline_group() const { return *pipeline_group_; }
  Communicator& tensor_group() const { return *tensor_group_; }

 private:
  Communicator* world_;
  GridShape shape_;
  GridCoordinates coordinates_;
  std::unique_ptr<Communicator> data_group_;
  std::unique_ptr<Communicator> pipeline_group_;
  std::unique_ptr<Communicator> tensor_group_;
};

}  // namespace zt::comm
