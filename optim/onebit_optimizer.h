// The compressed-communication optimizers (DeepSpeed's OneBitAdam, ZeroOneAdam and OneBitLamb):
// optimizers that, once warmed up, take each rank's own gradient (the engine skips the
// gradient all-reduce) and exchange a sign-compressed momentum instead
// (comm/compressed_allreduce.h). The engine asks gradients_stay_local() before each backward.
// They run on host f32 parameters, as DeepSpeed's MPI backend without cuda_aware stages
// through host memory.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "comm/compressed_allreduce.h"
#include "optim/lamb.h"
#include "optim/optimizer.h"

namespace zt::optim {

// The hyperparameters all three share, with DeepSpeed's defaults.
struct OneBitOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  int64_t freeze_step = 100000;  // OneBitAdam, OneBitLamb: full-precision steps first
  // Ours, not DeepSpeed's: every compressed average is replaced by an exact one (an f32
  // all-reduce), so that the same optimizer on the same ranks and data runs without the
  // compression and the difference measures what the compression alone costs
  // (bench/onebit_convergence.sh; config key optimizer.params.zerotrain_exact_average).
  bool exact_average = false;
};

class CompressedCommunicationOptimizer : public Optimizer {
 public:
  CompressedCommunicationOptimizer(std::vector<ParamGroup> groups,
                                   comm::Communicator& data_parallel, bool exact_average);
  // Whether the next backward's gradients must stay on their rank, unreduced.
  virtual bool gradients_stay_local() const = 0;
  // The parameters inside tensor `index` of `group` (a run of the engine's flat buffer holds
  // several), so that each is compressed or scaled on its own, as each parameter is in
  // DeepSpeed; only begin and numel are read. Without it a tensor is one piece.
  virtual void set_pieces(size_t /*group*/, size_t /*index*/, std::vector<NormSegment> /*pieces*/) {
  }

 protected:
  // One tensor's compressed averaging: its pieces (empty: the tensor is one piece) and one
  // compression per piece, made at first use.
  struct PieceCompressions {
    std::vector<NormSegment> pieces;
    std::vector<std::unique_ptr<comm::CompressedAllReduce>> compressions;
    // Forgets the errors of every piece (DeepSpeed zeroes them when what is compressed changes).
    void reset_errors();
  };
  // Replaces `buffer` (contiguous host f32) by its compressed average over the ranks, each piece
  // with its own scale. Collective.
  void average_by_pieces(PieceCompressions& compression, const Tensor& buffer);
  // `compression`'s average of `buffer`, or with OneBitOptions::exact_average the exact one.
  void average(comm::CompressedAllReduce& compression, const Tensor& buffer);
  comm::Communicator& data_parallel_;
  bool exact_average_;  // OneBitOptions::exact_average
};

}  // namespace zt::optim
