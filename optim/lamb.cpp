// LAMB's step (optim/lamb.h): pass 1 over every piece of every tensor (moments and partial
// squares), the partial squares summed per parameter (and across ranks by the combiner), the
// trust ratios, then pass 2 with one scale per piece.
#include "optim/lamb.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/ops/optimizer.h"
#include "core/ops/view.h"
#include "optim/state_tensors.h"

namespace zt::optim {

namespace {

Tensor flat_piece(const Tensor& tensor, const NormSegment& segment) {
  return ops::narrow(ops::reshape(tensor, {tensor.numel()}), 0, segment.begin, segment.numel);
}

}  // namespace

Lamb::Lamb(std::vector<ParamGroup> groups, LambOptions options)
    : Optimizer(std::move(groups)), options_(options) {
  auto check = [](bool ok, const char* what, double value) {
    if (!ok) throw std::invalid_argument(fmt::format("Lamb: invalid {} {}", what, value));
  };
  check(options_.beta1 >= 0.0 && options_.beta1 < 1.0, "beta1 (expected [0, 1))", options_.beta1);
  check(options_.beta2 >= 0.0 && options_.beta2 < 1.0, "beta2 (expected [0, 1))", options_.beta2);
  check(options_.eps >= 0.0, "eps (expected >= 0)", options_.eps);
  check(options_.min_coeff >= 0.0, "min_coeff (expected >= 0)", options_.min_coeff);
  check(options_.max_coeff >= options_.min_coeff, "max_coeff (expected >= min_coeff)",
        options_.max_coeff);
  // By default each tensor is a parameter of its own.
  for (const ParamGroup& group : groups_) {
    std::vector<State>& states = states_.emplace_back(group.params.size());
    for (size_t p = 0; p < states.size(); ++p)
      states[p].segments = {{0, group.params[p].numel(), key_count_++}};
  }
}

void Lamb::set_norm_segments(size_t group, size_t index, std::vector<NormSegment> segments,
                             size_t key_count) {
  const int64_t numel = groups_.at(group).params.at(index).numel();
  int64_t covered = 0;
  for (const NormSegment& segment : segments) {
    if (segment.begin != covered || segment.numel < 0 || segment.key >= key_count) {
      throw std::invalid_argument(fmt::format(
          "Lamb: norm segments of tensor {} of group {} must tile it in order with keys below "
          "{} (segment at {} of {} elements, key {})",
          index, group, key_count, segment.begin, segment.numel, segment.key));
    }
    covered += segment.numel;
  }
  if (covered != numel) {
    throw std::invalid_argument(
        fmt::format("Lamb: norm segments of tensor {} of group {} cover {} of its {} elements",
                    index, group, covered, numel));
  }
  states_.at(group).at(index).segments = std::move(segments);
  key_count_ = std::max(key_count_, key_count);
}

double Lamb::trust_ratio(double weight_square_sum, double update_square_sum) const {
  const double weight_norm = std::sqrt(weight_square_sum);
  const double update_norm = std::sqrt(update_square_sum);
  if (weight_norm == 0.0 || update_norm == 0.0) return 1.0;
  return std::clamp(weight_norm / update_norm, options_.min_coeff, options_.max_coeff);
}

void Lamb::step() {
  // The pieces of every tensor with a gradient, by group, with their state.
  struct Piece {
    AdamOperands operands;
    size_t key;
    State* state;
  };
  std::vector<std::vector<Piece>> pieces(groups_.size());
  std::vector<LambStepConstants> constants(groups_.size());
  std::vector<double> sums(2 * key_count_, 0.0);
  std::vector<State*> stepped;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    constants[g] = {.beta1 = float(options_.beta1),
                    .one_minus_beta1 = float(1.0 - options_.beta1),
                    .beta2 = float(options_.beta2),
                    .one_minus_beta2 = float(1.0 - options_.beta2),
                    .eps = float(options_.eps),
                    .weight_decay = float(group.weight_decay),
                    .eps_inside_sqrt = options_.eps_inside_sqrt};
    std::vector<AdamOperands> operands;
    for (size_t p = 0; p < group.params.size(); ++p) {
      const Tensor& param = group.params[p];
      if (!param.grad().defined()) continue;
      Tensor grad = gradient_of(param, "Lamb");
      State& state = states_[g][p];
      if (!state.exp_avg.defined()) {
        state.exp_avg = new_state_like(param);
        state.exp_avg_sq = new_state_like(param);
      }
      stepped.push_back(&state);
      for (const NormSegment& segment : state.segments) {
        AdamOperands piece{flat_piece(param, segment), flat_piece(grad, segment),
                           flat_piece(state.exp_avg, segment),
                           flat_piece(state.exp_avg_sq, segment)};
        operands.push_back(piece);
        pieces[g].push_back({piece, segment.key, &state});
      }
    }
    std::vector<double> piece_sums = ops::lamb_moments(operands, constants[g]);
    for (size_t i = 0; i < pieces[g].size(); ++i) {
      sums[2 * pieces[g][i].key] += piece_sums[2 * i];
      sums[2 * pieces[g][i].key + 1] += piece_sums[2 * i + 1];
    }
  }
  if (combiner_) combiner_(sums);
  trust_ratios_.assign(key_count_, 1.0);
  for (size_t key = 0; key < key_count_; ++key)
    trust_ratios_[key] = trust_ratio(sums[2 * key], sums[2 * key + 1]);
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::vector<AdamOperands> operands;
    std::vector<float> scales;
    for (const Piece& piece : pieces[g]) {
      const double step = double(piece.state->step + 1);
      const double step_size = options_.bias_correction
                                   ? groups_[g].lr *
                                         std::sqrt(1.0 - std::pow(options_.beta2, step)) /
                                         (1.0 - std::pow(options_.beta1, step))
                                   : groups_[g].lr;
      operands.push_back(piece.operands);
      scales.push_back(float(step_size * trust_ratios_[piece.key]));
    }
    ops::lamb_apply(operands, constants[g], scales);
  }
  for (State* state : stepped) ++state->step;
}

ParamState Lamb::param_state(size_t group, size_t index) const {
  const State& current = states_.at(group).at(index);
  return named_state(current.step,
                     {{"exp_avg", current.exp_avg}, {"exp_avg_sq", current.exp_avg_sq}});
}

void Lamb::set_param_state(size_t group, size_t index, const ParamState& state) {
  const Tensor& param = groups_.at(group).params.at(index);
  State& target = states_.at(group).at(index);
  std::vector<Tensor> restored = restored_states(param, "Lamb", state, {"exp_avg", "exp_avg_sq"});
  target.exp_avg = restored[0];
  target.exp_avg_sq = restored[1];
  target.step = state.step;
}

}  // namespace zt::optim
