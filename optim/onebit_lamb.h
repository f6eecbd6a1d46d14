// 1-bit LAMB (DeepSpeed's OneBitLamb): freeze_step steps of LAMB on the all-reduced gradient
// (the first step only sets up), whose trust ratios feed a running average (coeff_beta); then
// the variance is frozen and each step averages the momenta of all parameters, flattened into
// one buffer and scaled to a common magnitude, with the compressed all-reduce. The trust ratio
// after the freeze is that running average times a factor: how far the frozen variance's
// denominator is above a fresh one rebuilt from the reconstructed gradients, clamped to
// [factor_min, factor_max] and to within factor_threshold of the last step's factor.
#pragma once

#include <vector>

#include "optim/lamb.h"
#include "optim/onebit_optimizer.h"

namespace zt::optim {

struct OneBitLambOptions {
  OneBitOptions base;
  double max_coeff = 10.0;
  double min_coeff = 0.01;
  double coeff_beta = 0.9;
  double factor_max = 4.0;
  double factor_min = 0.5;
  double factor_threshold = 0.1;
};

class OneBitLamb final : public CompressedCommunicationOptimizer {
 public:
  OneBitLamb(std::vector<ParamGroup> groups, comm::Communicator& data_parallel,
             OneBitLambOptions options = {});
  void step() override;
  std::string name() const override { return "OneBitLamb"; }
  void set_momentum(double beta1) override { options_.base.beta1 = beta1; }
  double momentum() const override { return options_.base.beta1; }
  bool gradients_stay_local() const override { return frozen_; }
  // Each piece (onebit_optimizer.h) has its own trust ratio, factor and momentum scaling.
  void set_pieces(size_t group, size_t index, std::vector<NormSegment> pieces) override;
  // The trust ratio of each piece with a gradient in the last step, in order.
  const std::vector<double>& last_trust_ratios() const { return trust_ratios_; }
  ParamState param_state(size_t group, size_t index) const override;
  void set_param_state(size_t group, size_t index, const ParamState& state) override;

 private:
  struct Piece {  // one parameter: views of its tensor's states, and its own scalars
    Tensor exp_avg, exp_avg_sq, exp_avg_sq_fresh;
    double coeff_average = 0.0;  // DeepSpeed's lamb_coeff_freeze
    double last_factor = 1.0;
    double scaling = 0.0;  // DeepSpeed's scaling_coeff (0: not yet set)
  };
  struct State {
    Tensor exp_avg, exp_avg_sq, exp_avg_sq_fresh;
    int64_t step = 0;
    std::vector<NormSegment> segments;  // empty: the whole tensor is one piece
    std::vector<Piece> pieces;
  };
  struct Entry {  // a piece with a gradient in this step
    const ParamGroup* group;
    Tensor param, grad;
    Piece* state;
    int64_t step;
  };
  // (Re)makes the pieces' views of the state tensors, keeping their scalars.
  void attach_pieces(State& state, int64_t numel);
  void warm_up_step(const Entry& entry);
  void frozen_step(const Entry& entry, const std::vector<float>& last_exp_avg);
  // Averages every entry's momentum as one flat buffer, compressed.
  void average_momenta(const std::vector<Entry>& entries);

  OneBitLambOptions options_;
  bool initialized_ = false;
  bool frozen_ = false;
  std::vector<std::vector<State>> states_;
  std::unique_ptr<comm::CompressedAllReduce> compression_;
  std::vector<double> trust_ratios_;
};

}  // namespace zt::optim
