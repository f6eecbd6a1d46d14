// The piecewise compressed averaging the compressed-communication optimizers share
// (optim/onebit_optimizer.h).
#include "optim/onebit_optimizer.h"

#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace zt::optim {

CompressedCommunicationOptimizer::CompressedCommunicationOptimizer(
    std::vector<ParamGroup> groups, comm::Communicator& data_parallel, bool exact_average)
    : Optimizer(std::move(groups)), data_parallel_(data_parallel), exact_average_(exact_average) {}

void CompressedCommunicationOptimizer::average(comm::CompressedAllReduce& compression,
                                               const Tensor& buffer) {
  if (!exact_average_) {
    compression.average(buffer);
    return;
  }
  data_parallel_.all_reduce(buffer);
  ops::mul_(buffer, 1.0 / double(data_parallel_.size()));
}

void CompressedCommunicationOptimizer::PieceCompressions::reset_errors() {
  for (auto& compression : compressions)
    if (compression) compression->reset_errors();
}

void CompressedCommunicationOptimizer::average_by_pieces(PieceCompressions& compression,
                                                         const Tensor& buffer) {
  const int64_t count = buffer.numel();
  std::vector<NormSegment> pieces = compression.pieces;
  if (pieces.empty()) pieces.push_back({0, count, 0});
  compression.compressions.resize(pieces.size());
  const Tensor flat = ops::reshape(buffer, {count});
  for (size_t p = 0; p < pieces.size(); ++p) {
    // One scale per parameter: with one for a run of several, a parameter whose values are
    // small beside its neighbours' (a GPT's LayerNorm beside its embedding) would take their
    // magnitude, divided by its own small sqrt(v).
    std::unique_ptr<comm::CompressedAllReduce>& slot = compression.compressions[p];
    if (!slot) slot = std::make_unique<comm::CompressedAllReduce>(data_parallel_, pieces[p].numel);
    average(*slot, ops::narrow(flat, 0, pieces[p].begin, pieces[p].numel));
  }
}

}  // namespace zt::optim
