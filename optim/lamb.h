// LAMB as DeepSpeed's "Lamb" type (FusedLamb): Adam's moments, an update direction
// m / (sqrt(v) + eps) + weight_decay * w, and a per-parameter trust ratio ||w|| / ||update||
// clamped to [min_coeff, max_coeff] (1 where either norm is zero) that scales the step
// lr * sqrt(1 - beta2^t) / (1 - beta1^t). The norms are of whole parameters: where the tensors
// the optimizer steps are pieces of parameters (the ZeRO engine's runs of a flat shard), the
// caller names each piece's parameter (set_norm_segments) and gives a combiner that sums each
// parameter's partial squares across the ranks that own its pieces (set_norm_combiner).
#pragma once

#include <functional>
#include <vector>

#include "optim/optimizer.h"

namespace zt::optim {

struct LambOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  bool bias_correction = true;
  bool eps_inside_sqrt = false;
  double max_coeff = 10.0;
  double min_coeff = 0.01;
};

// Elements [begin, begin + numel) of one of the optimizer's tensors belong to parameter `key`.
struct NormSegment {
  int64_t begin = 0;
  int64_t numel = 0;
  size_t key = 0;
};

// Replaces sums[2 key] (squares of the weight) and sums[2 key + 1] (of the update) of every
// parameter by their totals over all ranks.
using NormCombiner = std::function<void(std::vector<double>& sums)>;

class Lamb final : public Optimizer {
 public:
  Lamb(std::vector<ParamGroup> groups, LambOptions options = {});
  void step() override;
  std::string name() const override { return "Lamb"; }
  void set_momentum(double beta1) override { options_.beta1 = beta1; }
  double momentum() const override { return options_.beta1; }
  const LambOptions& options() const { return options_; }

  // Tensor `index` of group `group` is made of these pieces (tiling it in order), each of the
  // parameter `key` < key_count. Without this call a tensor is one parameter of its own.
  void set_norm_segments(size_t group, size_t index, std::vector<NormSegment> segments,
                         size_t key_count);
  void set_norm_combiner(NormCombiner combiner) { combiner_ = std::move(combiner); }
  // The trust ratio of each parameter (by key) in the last step, as DeepSpeed's lamb_coeffs.
  const std::vector<double>& last_trust_ratios() const { return trust_ratios_; }

  ParamState param_state(size_t group, size_t index) const override;
  void set_param_state(size_t group, size_t index, const ParamState& state) override;

 private:
  struct State {
    Tensor exp_avg;
    Tensor exp_avg_sq;
    int64_t step = 0;
    std::vector<NormSegment> segments;
  };
  // The trust ratio from one parameter's summed squares.
  double trust_ratio(double weight_square_sum, double update_square_sum) const;

  LambOptions options_;
  std::vector<std::vector<State>> states_;  // [group][param]
  size_t key_count_ = 0;
  NormCombiner combiner_;
  std::vector<double> trust_ratios_;
};

}  // namespace zt::optim
