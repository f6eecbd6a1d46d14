// The step() of each plain optimizer: gather each parameter's gradient as contiguous f32 and
// apply the fused update (ops::adam_update / ops::sgd_update) to the parameters of a group
// that share the same per-step constants, one call for all of them, on whatever device they
// live (their state tensors are created on it).
#include <fmt/format.h>

#include <map>
#include <stdexcept>

#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/optimizer.h"
#include "core/ops/view.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "optim/state_tensors.h"

namespace zt::optim {

Sgd::Sgd(std::vector<ParamGroup> groups, SgdOptions options)
    : Optimizer(std::move(groups)), options_(options) {
  if (options_.momentum < 0.0) {
    throw std::invalid_argument(fmt::format("SGD: momentum {} must be >= 0", options_.momentum));
  }
  if (options_.nesterov && (options_.momentum <= 0.0 || options_.dampening != 0.0)) {
    throw std::invalid_argument("SGD: nesterov needs momentum > 0 and dampening 0");
  }
  for (const ParamGroup& group : groups_) momentum_buffers_.emplace_back(group.params.size());
}

const Tensor& Sgd::momentum_buffer(size_t group, size_t index) const {
  return momentum_buffers_.at(group).at(index);
}

ParamState Sgd::param_state(size_t group, size_t index) const {
  ParamState state;
  const Tensor& buffer = momentum_buffer(group, index);
  if (buffer.defined()) state.tensors.emplace_back("momentum_buffer", buffer);
  return state;
}

void Sgd::set_param_state(size_t group, size_t index, const ParamState& state) {
  const Tensor& param = groups_.at(group).params.at(index);
  Tensor buffer = find_state(state, "momentum_buffer");
  momentum_buffers_.at(group).at(index) =
      buffer.defined() ? restored_state(param, "SGD", "momentum_buffer", buffer) : Tensor();
}

void Sgd::step() {
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    SgdHyper hyper{group.lr, options_.momentum, options_.dampening, group.weight_decay,
                   options_.nesterov};
    bool use_momentum = hyper.momentum != 0.0;
    // Parameters whose momentum continues, and those whose momentum starts from the gradient.
    std::vector<SgdOperands> continuing, starting;
    for (size_t p = 0; p < group.params.size(); ++p) {
      Tensor& param = group.params[p];
      if (!param.grad().defined()) continue;
      Tensor grad = gradient_of(param, "SGD");
      Tensor& buffer = momentum_buffers_[g][p];
      bool first_step = !buffer.defined();
      if (use_momentum && first_step) buffer = new_state_like(param);
      (first_step ? starting : continuing)
          .push_back({param, grad, use_momentum ? buffer : Tensor()});
    }
    ops::sgd_update(continuing, sgd_step_constants(hyper, /*first_step=*/false));
    ops::sgd_update(starting, sgd_step_constants(hyper, /*first_step=*/true));
  }
}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options)
    : Optimizer(std::move(groups)), options_(options) {
  auto check = [](bool ok, const char* what, double value) {
    if (!ok) throw std::invalid_argument(fmt::format("Adam: invalid {} {}", what, value));
  };
  check(options_.beta1 >= 0.0 && options_.beta1 < 1.0, "beta1 (expected [0, 1))", options_.beta1);
  check(options_.beta2 >= 0.0 && options_.beta2 < 1.0, "beta2 (expected [0, 1))", options_.beta2);
  check(options_.eps >= 0.0, "eps (expected >= 0)", options_.eps);
  for (const ParamGroup& group : groups_) states_.emplace_back(group.params.size());
}

Adam::State& Adam::state_for_update(size_t group, size_t index) {
  State& state = states_.at(group).at(index);
  if (!state.exp_avg.defined()) {
    const Tensor& param = groups_.at(group).params.at(index);
    state.exp_avg = new_state_like(param);
    state.exp_avg_sq = new_state_like(param);
  }
  return state;
}

ParamState Adam::param_state(size_t group, size_t index) const {
  const State& current = states_.at(group).at(index);
  return named_state(current.step,
                     {{"exp_avg", current.exp_avg}, {"exp_avg_sq", current.exp_avg_sq}});
}

void Adam::set_param_state(size_t group, size_t index, const ParamState& state) {
  const Tensor& param = groups_.at(group).params.at(index);
  State& target = states_.at(group).at(index);
  std::vector<Tensor> restored = restored_states(param, name(), state, {"exp_avg", "exp_avg_sq"});
  target.exp_avg = restored[0];
  target.exp_avg_sq = restored[1];
  target.step = state.step;
}

void Adam::step() {
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    // Parameters by the number of their update (bias correction depends on it): usually one
    // batch. A parameter's count advances once its update has been applied.
    struct Batch {
      std::vector<AdamOperands> operands;
      std::vector<State*> states;
    };
    std::map<int64_t, Batch> by_step;
    for (size_t p = 0; p < group.params.size(); ++p) {
      Tensor& param = group.params[p];
      if (!param.grad().defined()) continue;
      Tensor grad = gradient_of(param, name().c_str());
      State& state = states_[g][p];
      if (!state.exp_avg.defined()) {
        state.exp_avg = new_state_like(param);
        state.exp_avg_sq = new_state_like(param);
      }
      Batch& batch = by_step[state.step + 1];
      batch.operands.push_back({param, grad, state.exp_avg, state.exp_avg_sq});
      batch.states.push_back(&state);
    }
    for (const auto& [step, batch] : by_step) {
      AdamHyper hyper{group.lr,
                      options_.beta1,
                      options_.beta2,
                      options_.eps,
                      group.weight_decay,
                      options_.decoupled_weight_decay,
                      options_.bias_correction,
                      step};
      ops::adam_update(batch.operands, adam_step_constants(hyper));
      for (State* state : batch.states) state->step = step;
    }
  }
}

}  // namespace zt::optim
