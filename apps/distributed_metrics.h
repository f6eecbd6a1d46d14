// What mnist_train's ranks compute together: sums over ranks, the test accuracy of the model
// over the whole test set (each rank classifies its share), and the engine's per-rank reports
// printed in rank order. Every function here is collective over `world`.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "comm/communicator.h"
#include "core/factory.h"
#include "data/sampler.h"
#include "dist/engine.h"

namespace zt::apps {

// Sums `values` over all ranks of `comm` in place.
inline std::vector<double> sum_over_ranks(comm::Communicator& comm, std::vector<double> values) {
  Tensor buffer = from_values(values, {int64_t(values.size())}, {.dtype = DType::f64});
  comm.all_reduce(buffer);
  return buffer.to_vector();
}

// Test accuracy over all ranks: rank r classifies positions r, r + N, ... of the test set
// (padded by wrap-around so every rank runs the same forwards, which stage 3 needs) and counts
// only positions inside the set.
inline double distributed_accuracy(dist::Engine& engine, const Tensor& images, const Tensor& labels,
                                   comm::Communicator& world) {
  NoGradGuard no_grad;
  engine.eval();
  int64_t count = images.size(0);
  data::DistributedSampler sampler(
      count, {.num_replicas = world.size(), .rank = world.rank(), .shuffle = false});
  std::vector<int64_t> indices = sampler.indices();
  std::vector<double> truth = labels.to_vector();
  double correct = 0.0;
  constexpr size_t kEvalBatch = 1000;
  for (size_t begin = 0; begin < indices.size(); begin += kEvalBatch) {
    size_t end = std::min(indices.size(), begin + kEvalBatch);
    std::vector<int64_t> chunk(indices.begin() + long(begin), indices.begin() + long(end));
    Tensor index = from_int64(chunk, {int64_t(chunk.size())});
    std::vector<double> predicted =
        argmax(engine.forward(index_select(images, 0, index).to(engine.device())), 1).to_vector();
    for (size_t i = 0; i < chunk.size(); ++i) {
      int64_t position = int64_t(begin + i) * world.size() + world.rank();
      if (position < count && predicted[i] == truth[size_t(chunk[i])]) correct += 1.0;
    }
  }
  engine.train();
  return sum_over_ranks(world, {correct})[0] / double(count);
}

// Each rank's memory and traffic report next to the ZeRO formulas, rank by rank.
inline void print_reports_in_rank_order(dist::Engine& engine, comm::Communicator& world) {
  for (int turn = 0; turn < world.size(); ++turn) {
    if (turn == world.rank()) {
      fmt::print("{}", engine.step_report());
      std::fflush(stdout);
    }
    world.barrier();
  }
}

}  // namespace zt::apps
