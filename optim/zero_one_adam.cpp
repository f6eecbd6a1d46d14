// ZeroOneAdam's step (optim/zero_one_adam.h), in the order of DeepSpeed's.
#include "optim/zero_one_adam.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/factory.h"
#include "core/ops/view.h"
#include "optim/onebit_arithmetic.h"
#include "optim/state_tensors.h"

namespace zt::optim {

ZeroOneAdam::ZeroOneAdam(std::vector<ParamGroup> groups, comm::Communicator& data_parallel,
                         ZeroOneAdamOptions options)
    : CompressedCommunicationOptimizer(std::move(groups), data_parallel,
                                       options.base.exact_average),
      options_(options) {
  auto check = [](bool ok, const char* what, int64_t value) {
    if (!ok) throw std::invalid_argument(fmt::format("ZeroOneAdam: invalid {} {}", what, value));
  };
  check(options_.var_freeze_step >= 0, "var_freeze_step (expected >= 0)", options_.var_freeze_step);
  check(options_.var_update_scaler >= 1, "var_update_scaler (expected >= 1)",
        options_.var_update_scaler);
  check(options_.local_step_scaler >= 1, "local_step_scaler (expected >= 1)",
        options_.local_step_scaler);
  check(options_.local_step_clipper >= 1, "local_step_clipper (expected >= 1)",
        options_.local_step_clipper);
  for (const ParamGroup& group : groups_) {
    for (const Tensor& param : group.params) {
      if (param.device().type != DeviceType::cpu || param.dtype() != DType::f32)
        throw std::invalid_argument(
            "ZeroOneAdam: parameters must be contiguous f32 in host memory (the compressed "
            "all-reduce stages through the host)");
    }
    states_.emplace_back(group.params.size());
  }
}

void ZeroOneAdam::synchronise(const Tensor& param, State& state) {
  const int64_t count = param.numel();
  float* weights = param.data_ptr<float>();
  float* move = state.accumulated_move.data_ptr<float>();
  float* exp_avg = state.exp_avg.data_ptr<float>();
  const float* exp_avg_sq = state.exp_avg_sq.data_ptr<float>();
  const float eps = float(options_.base.eps);
  for (int64_t i = 0; i < count; ++i) {
    weights[i] -= move[i];                      // undo the local steps
    move[i] *= std::sqrt(exp_avg_sq[i]) + eps;  // back to momentum units
  }
  if (data_parallel_.size() > 1) average_by_pieces(state.compression, state.accumulated_move);
  onebit::mask_unseen(move, exp_avg_sq, count);
  for (int64_t i = 0; i < count; ++i) {
    exp_avg[i] = -(move[i] / float(state.lr_sum));
    weights[i] += move[i] / (std::sqrt(exp_avg_sq[i]) + eps);
    move[i] = 0.0f;
  }
  state.lr_sum = 0.0;
}

void ZeroOneAdam::step_param(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                             State& state) {
  const int64_t count = param.numel();
  const float beta1 = float(options_.base.beta1), beta2 = float(options_.base.beta2);
  float* exp_avg = state.exp_avg.data_ptr<float>();
  if (!frozen_) {
    if (state.step % var_interval_ == 0) {  // the engine all-reduced this gradient in full
      onebit::update_variance(state.exp_avg_sq.data_ptr<float>(), grad.data_ptr<float>(), count,
                              beta2);
      onebit::update_momentum(exp_avg, grad.data_ptr<float>(), count, beta1);
    } else {
      // DeepSpeed updates the momentum on these steps only where there are several ranks;
      // with one there is nothing to average, and the momentum is updated all the same.
      Tensor averaged = ops::clone(grad);
      if (data_parallel_.size() > 1) average_by_pieces(state.compression, averaged);
      onebit::mask_unseen(averaged.data_ptr<float>(), state.exp_avg_sq.data_ptr<float>(), count);
      onebit::update_momentum(exp_avg, averaged.data_ptr<float>(), count, beta1);
    }
  } else {
    onebit::update_momentum(exp_avg, grad.data_ptr<float>(), count, beta1);
    state.lr_sum += group.lr;
  }
  onebit::apply_adam_update(param.data_ptr<float>(), exp_avg, state.exp_avg_sq.data_ptr<float>(),
                            count, float(group.lr), float(options_.base.eps),
                            float(group.weight_decay),
                            frozen_ ? state.accumulated_move.data_ptr<float>() : nullptr);
  if (frozen_ && state.step % local_step_interval_ == 0) synchronise(param, state);
}

void ZeroOneAdam::advance_schedules(int64_t step) {
  if (!frozen_) {
    if (step % var_interval_ == 0 && ++var_counter_ == options_.var_update_scaler) {
      var_counter_ = 0;
      var_interval_ *= 2;
    }
  } else if (++local_step_counter_ == options_.local_step_scaler) {
    local_step_counter_ = 0;
    local_step_interval_ = std::min(options_.local_step_clipper, local_step_interval_ * 2);
  }
  if (step > options_.var_freeze_step && !frozen_) {
    frozen_ = true;
    for (auto& states : states_)
      for (State& state : states) state.compression.reset_errors();
  }
  allreduce_next_ = !frozen_ && (step + 1) % var_interval_ == 0;
}

void ZeroOneAdam::step() {
  int64_t last_step = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t p = 0; p < groups_[g].params.size(); ++p) {
      const Tensor& param = groups_[g].params[p];
      if (!param.grad().defined()) continue;
      Tensor grad = gradient_of(param, "ZeroOneAdam");
      State& state = states_[g][p];
      if (!state.exp_avg.defined()) {
        state.exp_avg = new_state_like(param);
        state.exp_avg_sq = new_state_like(param);
        state.accumulated_move = new_state_like(param);
      }
      state.step += 1;
      last_step = state.step;
      if (!initialized_) continue;
      step_param(groups_[g], param, grad, state);
    }
  }
  if (!initialized_) {
    initialized_ = true;
    allreduce_next_ = true;
    return;
  }
  advance_schedules(last_step);
}

void ZeroOneAdam::set_pieces(size_t group, size_t index, std::vector<NormSegment> pieces) {
  states_.at(group).at(index).compression = {std::move(pieces), {}};
}

ParamState ZeroOneAdam::param_state(size_t group, size_t index) const {
  const State& current = states_.at(group).at(index);
  return named_state(current.step,
                     {{"exp_avg", current.exp_avg}, {"exp_avg_sq", current.exp_avg_sq}});
}

void ZeroOneAdam::set_param_state(size_t group, size_t index, const ParamState& state) {
  const Tensor& param = groups_.at(group).params.at(index);
  State& target = states_.at(group).at(index);
  std::vector<Tensor> restored = restored_states(param, name(), state, {"exp_avg", "exp_avg_sq"});
  target.exp_avg = restored[0];
  target.exp_avg_sq = restored[1];
  target.accumulated_move = restored[0].defined() ? new_state_like(param) : Tensor();
  target.step = state.step;
  target.compression.compressions.clear();
  initialized_ = state.step > 0;
}

}  // namespace zt::optim
